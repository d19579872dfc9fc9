"""The model kinds and what builds, saves and loads them: :class:`.model.Codec`, the encoders and
decoders (DAC-layout, STFT / Vocos and their causal kinds), :mod:`.builder` (config -> modules),
:mod:`.weights` (save / load, torch) and :mod:`.modelfile` (read a model file without torch). Import
the submodules directly; this package imports nothing (so the light runtime can read model files)."""
