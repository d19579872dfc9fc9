"""What a run writes while it trains: metrics.jsonl, TensorBoard scalars and audio, the progress bar."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import torch


class RunLog:
    """metrics.jsonl + TensorBoard (if it imports) + a rich progress bar; rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool, progress: bool, start: int, total: int) -> None:
        self.enabled = enabled
        self.jsonl = (run_dir / "metrics.jsonl").open("a", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:  # noqa: BLE001 - TensorBoard is optional
                self.tb = None
        self.bar = None
        if enabled and progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.task = self.bar.add_task("train", total=total, completed=start, info="")
            self.bar.start()

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        assert self.jsonl is not None
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            prefix = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time"):
                    self.tb.add_scalar(f"{prefix}/{key}", value, record["step"])

    def audio(self, tag: str, audio: torch.Tensor, step: int, sample_rate: int) -> None:
        if self.tb is not None:
            self.tb.add_audio(tag, audio.reshape(-1).float().cpu().clamp(-1, 1), step, sample_rate)

    def advance(self, step: int, info: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)

    def close(self) -> None:
        """Stop the bar and close the files (safe to call twice)."""
        if self.bar is not None:
            self.bar.stop()
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        self.bar = self.jsonl = self.tb = None


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
