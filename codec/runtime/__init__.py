"""Runtimes that run a model's encoder and decoder: torch (:mod:`codec.runtime.torch_runtime`) or
onnxruntime on the model's ONNX graphs (:mod:`codec.runtime.onnx_runtime`, no torch), behind one
small interface (:mod:`codec.runtime.base`); :mod:`codec.runtime.onnx_export` makes the graphs."""
