"""Runtimes that run a model's encoder and decoder: torch (:mod:`codec.runtime.torch_runtime`) or
onnxruntime on the model's ONNX graphs (:mod:`codec.runtime.onnx_runtime`, no torch), behind one
small interface (:mod:`codec.runtime.base`); :mod:`codec.runtime.onnx_export` makes the graphs. And
what codes with them: windowed coding of long signals (:mod:`codec.runtime.streaming`), frame-by-frame
coding with a causal model (:mod:`codec.runtime.stepper`), real-time streams
(:mod:`codec.runtime.realtime`, resampling with :mod:`codec.runtime.rtresample`) and the device choice
(:mod:`codec.runtime.device`)."""
