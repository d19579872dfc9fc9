"""The optional extras: which modules they provide and a clear error when they are missing.

``pip install diveq-codec`` installs the light runtime: encoding and decoding with onnxruntime on the
models' ONNX graphs (numpy, soundfile, soxr, onnxruntime, typer, rich). ``[torch]`` adds the torch
runtime (GPUs, models without graphs); training, evaluation and the study also need the ``[train]``
extra (which includes ``[torch]``), the ONNX export the ``[export]`` extra (torch, onnx, onnxscript).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .errors import MissingExtrasError

#: Top-level modules the ``[train]`` extra installs (descript-audio-codec is ``dac``, with
#: ``audiotools``; pillow is ``PIL``).
TRAIN_MODULES = ("dac", "audiotools", "librosa", "pesq", "pystoi", "matplotlib", "PIL", "scipy",
                 "tensorboard", "torchaudio", "speechmos")
#: How to install them.
INSTALL_HINT = "pip install 'diveq-codec[train]'"
#: The ``[export]`` extra: the ONNX export's tools (with torch), and how to install them.
EXPORT_MODULES = ("torch", "onnx", "onnxscript")
EXPORT_INSTALL_HINT = "pip install 'diveq-codec[export]'"
#: The ``[torch]`` extra: the torch runtime (also part of ``[train]``), and how to install it.
TORCH_MODULES = ("torch", "safetensors")
TORCH_INSTALL_HINT = "pip install 'diveq-codec[torch]'"


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extras_error(feature: str, modules: Iterable[str]) -> MissingExtrasError:
    """The error naming ``feature``, the missing ``modules`` and :data:`INSTALL_HINT`."""
    return MissingExtrasError(f"{feature} needs the training extras (missing: {', '.join(modules)}); "
                              f"install them with: {INSTALL_HINT}")


def require_train_extras(feature: str, modules: Iterable[str] = TRAIN_MODULES) -> None:
    """Raise MissingExtrasError naming ``feature`` unless every one of ``modules`` can be imported."""
    missing = [m for m in modules if not available(m)]
    if missing:
        raise missing_extras_error(feature, missing)


def export_extras_error(feature: str, modules: Iterable[str]) -> MissingExtrasError:
    """The error naming ``feature``, the missing ``modules`` and :data:`EXPORT_INSTALL_HINT`."""
    return MissingExtrasError(f"{feature} needs the export extras (missing: {', '.join(modules)}); "
                              f"install them with: {EXPORT_INSTALL_HINT}")


def require_export_extras(feature: str) -> None:
    """Raise MissingExtrasError naming ``feature`` unless torch, onnx and onnxscript can be imported."""
    missing = [m for m in EXPORT_MODULES if not available(m)]
    if missing:
        raise export_extras_error(feature, missing)


def missing_torch_error(feature: str) -> MissingExtrasError:
    """The error naming ``feature``, which needs torch, and :data:`TORCH_INSTALL_HINT`."""
    return MissingExtrasError(f"{feature} needs torch, which the light install leaves out; install it "
                              f"with: {TORCH_INSTALL_HINT}")


def torch_available() -> bool:
    """Whether torch can be imported (checked without importing it)."""
    return available("torch")


def as_missing_extras(exc: ModuleNotFoundError, feature: str) -> MissingExtrasError | None:
    """The MissingExtrasError for an import of a ``[train]`` or ``[torch]`` module that failed, else
    None."""
    root = (exc.name or "").split(".")[0]
    if root in TORCH_MODULES:
        return missing_torch_error(feature)
    if root in EXPORT_MODULES:
        return export_extras_error(feature, [root])
    return missing_extras_error(feature, [root]) if root in TRAIN_MODULES else None
