"""Lowering a stream's bitrate without the model: keep a prefix of its residual stages.

Residual codes are coarse to fine: the encoder picks stage k's code from what stages 0..k-1 left, and
never looks at later stages. So the first K' stages of a K-stage stream are exactly the codes an
encoder asked for K' stages writes, and a lower bitrate is a prefix of the stages. Transcoding
copies the header with ``n_codebooks = K'`` and each chunk's first K' stages, chunk by chunk: no
model, no audio decoding, no torch (this module imports only numpy and the container), milliseconds
per file. The result is byte-identical to encoding the same audio at K' stages directly (same format
version) and so decodes to the same audio. Stages cannot be added: K' <= K.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from typing import BinaryIO

from ..checks import choose_stages
from ..errors import UsageError
from ..io.fileio import as_path, atomic_output, check_distinct, check_output, released_on_failure
from .bitstream import StreamHeader, iter_chunks, read_header, write_stream
from .streamfile import StreamInput, check_stream_output, open_stream


def kept_stages(header: StreamHeader, bitrate_kbps: float | None = None,
                n_codebooks: int | None = None) -> int:
    """Stages to keep: ``n_codebooks``, or the most whose bitrate (kbps per channel) fits
    ``bitrate_kbps``; UsageError if that asks for more than the stream holds, or for both/neither."""
    if bitrate_kbps is None and n_codebooks is None:
        raise UsageError("give the bitrate (--bitrate) or the number of stages (--n-codebooks) to keep")
    return choose_stages(bitrate_kbps, n_codebooks, header.stage_bitrate / 1000.0, header.n_codebooks,
                         f"this stream ({header.n_codebooks} stages)")


def transcode_stream(src: BinaryIO | StreamInput, dst: BinaryIO, *, bitrate_kbps: float | None = None,
                     n_codebooks: int | None = None) -> StreamHeader:
    """Read a stream from ``src`` (a binary file, or a :class:`StreamInput` whose header is read) and
    write it to ``dst`` with fewer stages, one chunk at a time; returns the new header. Every chunk's
    CRC is checked on the way (BitstreamError on corruption; ``dst`` then holds part of a stream)."""
    if isinstance(src, StreamInput):
        f, header = src.file, src.header
    else:
        f, header = src, read_header(src)
    n = kept_stages(header, bitrate_kbps, n_codebooks)
    out = dataclasses.replace(header, n_codebooks=n)
    write_stream(dst, out, (chunk[:, :n, :] for chunk in iter_chunks(f, header)))
    return out


def transcode(data: bytes, *, bitrate_kbps: float | None = None,
              n_codebooks: int | None = None) -> bytes:
    """:func:`transcode_stream` on bytes in memory."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"transcode takes the .dvq bytes, got {type(data).__name__} (use "
                         "transcode_file for files)")
    out = io.BytesIO()
    transcode_stream(io.BytesIO(bytes(data)), out, bitrate_kbps=bitrate_kbps, n_codebooks=n_codebooks)
    return out.getvalue()


def transcode_file(in_path: str | os.PathLike[str] | StreamInput, out_path: str | os.PathLike[str], *,
                   bitrate_kbps: float | None = None, n_codebooks: int | None = None,
                   force: bool = False) -> StreamHeader:
    """Transcode a ``.dvq`` file (``-``: standard input) to another ``.dvq`` file (``-``: standard
    output) keeping fewer stages; atomic, never onto the input, an existing output only with
    ``force``. Returns the new header."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(released_on_failure(out_path))
        check_stream_output(out_path)
        if isinstance(in_path, StreamInput):
            stream = in_path
        else:
            check_distinct(as_path(in_path, "in_path"), out_path)
            check_output(out_path, force)
            stream = stack.enter_context(open_stream(in_path))
        kept_stages(stream.header, bitrate_kbps, n_codebooks)  # fail before creating any file
        with atomic_output(out_path, force) as tmp, open(tmp, "wb") as f:
            return transcode_stream(stream, f, bitrate_kbps=bitrate_kbps, n_codebooks=n_codebooks)


__all__ = ["kept_stages", "transcode_stream", "transcode", "transcode_file"]
