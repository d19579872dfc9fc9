"""The optional ``[train]`` extras: which modules they provide and a clear error when they are missing.

``pip install diveq-codec`` installs what encoding and decoding need (torch, numpy, soundfile, soxr,
safetensors, typer, rich); training, evaluation and the study also need the ``[train]`` extra.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .errors import MissingExtrasError

#: Top-level modules the ``[train]`` extra installs (descript-audio-codec is ``dac``, with
#: ``audiotools``; pillow is ``PIL``).
TRAIN_MODULES = ("dac", "audiotools", "librosa", "pesq", "pystoi", "matplotlib", "PIL", "scipy",
                 "tensorboard", "torchaudio", "speechmos", "onnxruntime")
#: How to install them.
INSTALL_HINT = "pip install 'diveq-codec[train]'"


def _available(module: str) -> bool:
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
    missing = [m for m in modules if not _available(m)]
    if missing:
        raise missing_extras_error(feature, missing)


def as_missing_extras(exc: ModuleNotFoundError, feature: str) -> MissingExtrasError | None:
    """The MissingExtrasError for an import of a ``[train]`` module that failed, else None."""
    root = (exc.name or "").split(".")[0]
    return missing_extras_error(feature, [root]) if root in TRAIN_MODULES else None
