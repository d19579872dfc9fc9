"""When a training run stops before its last step: a wall-clock or CPU-time budget, SIGTERM or Ctrl-C.
Either way the loop finishes the current step and writes a checkpoint (resume continues exactly)."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Any

from .state import TrainState


@dataclasses.dataclass(frozen=True)
class Limits:
    """When a run stops early: wall time since ``t_start``, CPU time of the training steps."""

    t_start: float
    max_minutes: float | None
    max_cpu_minutes: float | None

    def reached(self, state: TrainState) -> bool:
        return (self.max_minutes is not None
                and time.monotonic() - self.t_start > 60 * self.max_minutes
                or self.max_cpu_minutes is not None and state.cpu_seconds > 60 * self.max_cpu_minutes)


class StopRequest:
    """Turns SIGTERM / the first SIGINT into a request to stop after the current step (main thread
    only; the previous handlers are restored on exit). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
