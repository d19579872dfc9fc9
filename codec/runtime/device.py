"""Which torch device to run on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (below the API and training).

torch is imported when a device is resolved, not with this module (the API imports it without torch);
:func:`device_kind` checks a name without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DeviceError, UsageError

if TYPE_CHECKING:
    import torch


def device_kind(device: str) -> str:
    """``auto``, ``cpu`` or ``cuda`` (also for ``cuda:N``): the kind of a device name, checked without
    torch (UsageError for a name that is none of them)."""
    if not isinstance(device, str):
        raise UsageError(f"device must be a string (auto, cpu, cuda or cuda:N), got "
                         f"{type(device).__name__}")
    name = device.strip().lower()
    if name in ("auto", "cpu"):
        return name
    if name == "cuda" or name.startswith("cuda:"):
        return "cuda"
    raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``; ``cuda`` / ``cuda:N`` (DeviceError without GPU)."""
    kind = device_kind(device)
    import torch

    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    return _cuda_device(device, device.strip().lower())


def _cuda_device(device: str, name: str) -> torch.device:
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but no CUDA GPU is available "
                          "(use --device cpu or auto)")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"invalid device {device!r}") from None
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                          "CUDA device(s) exist")
    return dev
