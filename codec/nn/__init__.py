"""Building blocks of the encoders and decoders (plain modules: no config, no CLI)."""
