""".dvq files: opening one once (``-`` for standard input) with its header read, the rule for output
names, and the summary ``diveq-codec info`` prints. The format itself is :mod:`codec.format.bitstream`."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import BitstreamError, UsageError, printable
from ..io.fileio import as_path, is_stdio, is_stream_output
from .bitstream import STREAM_EXTENSION, read_header
from .streamheader import StreamHeader


def check_stream_output(out_path: str | os.PathLike[str]) -> None:
    """UsageError unless ``out_path`` ends in ``.dvq`` or is written through rather than replaced
    (``-``, ``/dev/stdout``, a FIFO, a character device): a stream is never written under an audio
    file's name (``encode in.wav in.wav --force`` would destroy the input)."""
    if is_stream_output(as_path(out_path, "out_path")):
        return
    if Path(out_path).suffix.lower() != STREAM_EXTENSION:
        raise UsageError(f"the output {out_path} does not end in {STREAM_EXTENSION}: streams are "
                         "written only to *.dvq names (or - for standard output)")


class _Counted:
    """A binary reader that counts the bytes read through it (and passes seeks through)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self.count = f, 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.count += len(data)
        return data

    def seekable(self) -> bool:
        return bool(getattr(self._f, "seekable", lambda: False)())

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)


class StreamInput:
    """An open ``.dvq`` input with its header read and checked (:func:`open_stream`): ``file`` is
    positioned at the first chunk, ``bytes_read`` counts the bytes read from it so far."""

    def __init__(self, file: BinaryIO, name: str) -> None:
        counted = _Counted(file)
        self.file: BinaryIO = counted  # type: ignore[assignment]
        self.name = name
        self.header = read_header(self.file)
        self._counted = counted

    @property
    def bytes_read(self) -> int:
        return self._counted.count


@contextlib.contextmanager
def open_stream(in_path: str | os.PathLike[str]) -> Iterator[StreamInput]:
    """Open a ``.dvq`` input once (``-``: standard input; FIFOs and ``/dev/stdin`` work, read as a
    stream) and read its header. BitstreamError if it is missing, unreadable or malformed."""
    if is_stdio(in_path):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("standard input is a terminal: pipe a .dvq stream into it, or give a file "
                             "name instead of -")
        yield StreamInput(sys.stdin.buffer, "standard input")
        return
    path = Path(as_path(in_path, "in_path"))
    if not path.exists():
        raise BitstreamError(f"no such file: {path}")
    if path.is_dir():
        raise BitstreamError(f"is a folder, not a .dvq file: {path}")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the ``with`` below; OSError reported here
    except OSError as exc:
        raise BitstreamError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        yield StreamInput(f, str(path))


def describe(header: StreamHeader) -> dict[str, str]:
    """Human-readable summary for ``diveq-codec info`` (label -> value, in display order). Text from
    the stream (the model name) is escaped with :func:`codec.errors.printable`."""
    sf = f" ({header.sf_inference})" if header.sf_inference else ""
    if header.model_name is None:
        model = f"weights sha256 {header.model_hash}... (the stream stores no name)"
    else:
        model = f"{printable(header.model_name)} (weights sha256 {header.model_hash[:16]}...)"
    return {
        "format": f".dvq version {header.format_version}",
        "duration": f"{header.duration_seconds:.3f} s ({header.n_samples} samples per channel)",
        "bitrate": f"{header.nominal_bitrate / 1000:.3f} kbps nominal (all channels)",
        "model": model,
        "channels": str(header.channels),
        "sample rate": f"{header.sample_rate} Hz",
        "model sample rate": f"{header.model_sample_rate} Hz ({header.frame_rate:g} frames/s)",
        "stages": f"{header.n_codebooks} x {header.codebook_size} codes ({header.bits_per_code} bits)",
        "quantizer": header.quantizer_kind + sf,
        "frames": f"{header.n_frames} per channel",
        "chunks": f"{header.n_chunks} of up to {header.chunk_frames} frames",
        "gains": ", ".join(f"{gain:.4g}" for gain in header.gains),
    }


__all__ = ["check_stream_output", "StreamInput", "open_stream", "describe"]
