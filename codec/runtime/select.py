"""Choosing and loading a runtime for a model file, and wrapping any model in the window interface.

``runtime``:
  - ``onnx``: onnxruntime on the model's graphs, on the CPU (``device`` auto or cpu); no torch.
  - ``torch``: a :class:`codec.models.model.Codec` on ``device``; needs the ``[torch]`` extra.
  - ``auto``: onnx when the device is auto or cpu and the model has graphs, else torch. So the light
    install codes with every model that has graphs, and ``--device cuda`` runs torch on the GPU
    (``--device auto`` does not look for a GPU: that would import torch, seconds of the start-up).
    For streaming (``streaming=True``) the graphs that count are a causal model's frame graphs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..extras import missing_torch_error, torch_available
from .base import RUNTIMES, CodecRuntime, has_frame_graphs, has_graphs
from .device import device_kind

if TYPE_CHECKING:
    from ..models.model import Codec
    from .onnx_runtime import OnnxCodec


def check_runtime(runtime: Any) -> str:
    """``runtime`` as one of :data:`RUNTIMES` (UsageError otherwise)."""
    if not isinstance(runtime, str) or runtime.strip().lower() not in RUNTIMES:
        raise UsageError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime.strip().lower()


def choose_runtime(path: Path, device: str, runtime: str, streaming: bool = False) -> str:
    """``onnx`` or ``torch`` for the model file ``path`` (rules in the module docstring); UsageError
    for a combination that cannot run (onnx on cuda, onnx without graphs is a ModelError when the
    model loads), MissingExtrasError when torch is needed and not installed."""
    kind = device_kind(device)
    runtime = check_runtime(runtime)
    if runtime == "auto":
        graphs = has_frame_graphs(path) if streaming else has_graphs(path)
        runtime = "onnx" if kind != "cuda" and graphs else "torch"
        if runtime == "torch" and not torch_available():
            what = "ONNX frame graphs for streaming" if streaming else "ONNX graphs"
            why = (f"--device {device}" if kind == "cuda" else
                   f"model {path.name} (it has no {what}: make them with diveq-codec export-onnx)")
            raise missing_torch_error(why)
    if runtime == "onnx" and kind == "cuda":
        raise UsageError(f"the onnx runtime runs on the CPU: use --runtime torch for --device {device}")
    if runtime == "torch" and not torch_available():
        raise missing_torch_error("the torch runtime")
    return runtime


def load_runtime_model(path: Path, device: str = "auto", runtime: str = "auto",
                       threads: int | None = None, streaming: bool = False) -> Codec | OnnxCodec:
    """The model file ``path`` ready to code: an :class:`~codec.runtime.onnx_runtime.OnnxCodec` for
    the onnx runtime, a :class:`~codec.models.model.Codec` in eval mode on ``device`` for torch."""
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    if choose_runtime(path, device, runtime, streaming) == "onnx":
        from .onnx_runtime import OnnxCodec

        return OnnxCodec(path, threads)
    from .device import resolve_device

    dev = resolve_device(device)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from ..models.weights import load_model_file

    return load_model_file(path, dev).eval()


def as_runtime(model: Any) -> CodecRuntime:
    """``model`` behind the window interface: a runtime as it is (it has ``encode_window``), a torch
    model (``encode`` / ``decode`` on tensors) wrapped in :class:`~codec.runtime.torch_runtime.TorchRuntime`."""
    if hasattr(model, "encode_window") and hasattr(model, "decode_window"):
        return model
    from .torch_runtime import TorchRuntime

    return TorchRuntime(model)
