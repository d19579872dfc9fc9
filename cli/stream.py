"""``encode --stream`` and ``decode --stream``: real-time coding through pipes.

``encode --stream IN OUT`` reads raw PCM (signed 16-bit little-endian, mono, ``--rate`` Hz) as it
arrives and writes the session header, then each packet as soon as its frames are in (flushed per
packet); at the end of the input it writes the end packet. ``decode --stream IN OUT`` reads that
packet stream and writes raw PCM (the same format, at the session's rate) as each packet is decoded.
So ``sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | diveq-codec encode --stream - - | diveq-codec
decode --stream - - | aplay -t raw -f S16_LE -r 16000 -c 1`` plays while it records. The format of
the packets: ``docs/packets.md``; latency and concealment: ``docs/streaming.md``.

Unlike the file commands, a stream's output is written as it goes (there is nothing to hold back), so
an error part-way leaves what was written before it; a regular output file is still written to a part
file and renamed when complete. The error rules and exit codes are the README's: a corrupt session
header or packet exits 4 with one ``error:`` line; a gap in sequence numbers is concealed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from codec.errors import AudioError, BitstreamError, DiveqWarning, ModelError, OutputError, UsageError
from codec.io.fileio import atomic_output, check_distinct, check_output, describe_os_error, is_stdio, write_error

if TYPE_CHECKING:
    from codec.api import Model
    from codec.format.packets import SessionHeader

#: Seconds of input read at a time (at most; a pipe gives what it has).
READ_SECONDS = 0.02
#: The extension ``encode --stream`` refuses for its output: a packet stream is not a .dvq file.
DVQ_SUFFIX = ".dvq"


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


@contextlib.contextmanager
def _open_in(path: str, what: str, error: type[AudioError] | type[BitstreamError]) -> Iterator[BinaryIO]:
    """Standard input (``-``) or a file / FIFO, read as it arrives."""
    if is_stdio(path):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError(f"standard input is a terminal: pipe {what} into it, or give a file name "
                             "instead of -")
        yield sys.stdin.buffer
        return
    p = Path(path)
    if not p.exists():
        raise error(f"no such file: {p}")
    if p.is_dir():
        raise error(f"is a folder, not {what}: {p}")
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the ``with`` below
    except OSError as exc:
        raise error(f"cannot read {p}: {describe_os_error(exc)}") from None
    with f:
        yield f


def _read(f: BinaryIO, size: int, where: str, error: type[AudioError] | type[BitstreamError]) -> bytes:
    """What ``f`` has, up to ``size`` bytes (b"" at its end), without waiting for more than a byte."""
    try:
        read1 = getattr(f, "read1", None)
        return read1(size) if read1 is not None else f.read(size)
    except OSError as exc:
        raise error(f"cannot read {where}: {describe_os_error(exc)}") from None


class _Output:
    """Where a stream goes: written and flushed per piece."""

    def __init__(self, f: BinaryIO, name: str) -> None:
        self.f, self.name = f, name

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.f.write(data)
            self.f.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise write_error(self.name, exc) from None


def _is_special(path: str) -> bool:
    """True for an existing FIFO, device or socket (written directly, as it reads)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _check_out(path: str, force: bool) -> None:
    """What can be checked before any work: a regular output that exists needs ``force``."""
    if not is_stdio(path) and not _is_special(path):
        check_output(path, force)


@contextlib.contextmanager
def _open_out(path: str, force: bool) -> Iterator[_Output]:
    """Standard output (``-``; not a terminal), a FIFO or device (written directly), or a regular file
    (a part file renamed when complete; never overwritten without ``force``)."""
    if is_stdio(path):
        if sys.stdout is None or sys.stdout.isatty():
            raise UsageError("standard output is a terminal: redirect it to a file or a pipe")
        sys.stdout.flush()
        yield _Output(sys.stdout.buffer, "standard output")
        return
    if _is_special(path):
        try:
            f = open(path, "wb")  # noqa: SIM115 - closed by the ``with`` below
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
        with f:
            yield _Output(f, str(path))
        return
    check_output(path, force)
    with atomic_output(path, force) as tmp, open(tmp, "wb") as f:
        yield _Output(f, str(path))


# ---------------------------------------------------------------------------------------------
# Models


def _builtin_causal() -> str:
    """The name of the built-in causal model (the default if it is causal)."""
    from codec.api import DEFAULT_MODEL_PATH, builtin_model_cards

    cards = builtin_model_cards()
    names = sorted((n for n, c in cards.items() if (c.get("config") or {}).get("causal")),
                   key=lambda n: n != DEFAULT_MODEL_PATH.stem)
    if not names:
        raise ModelError("no built-in causal model is installed, and streaming needs one: pass --model with "
                         "a causal model (model.causal = true; docs/streaming.md)")
    return names[0]


def _builtin_for_session(session: SessionHeader) -> str:
    from codec.api import builtin_model_cards

    for name, card in sorted(builtin_model_cards().items(), key=lambda item: item[0] != "default"):
        if str(card.get("weights_sha256", "")).startswith(session.model_hash):
            return name
    raise BitstreamError(f"the stream was made by a model that is not built in (weights "
                         f"{session.model_hash}): decode it with --model pointing to that model")


# ---------------------------------------------------------------------------------------------
# Commands


def encode_stream(input: str, output: str, load: Callable[[str], Model], model: str | None,
                  bitrate: float | None, n_codebooks: int | None, rate: int, gain_db: float,
                  frames_per_packet: int, force: bool) -> None:
    """``encode --stream``: raw s16le mono PCM at ``rate`` Hz in, packets out (see the module docstring).
    ``load(name)`` loads a model by file or built-in name."""
    from codec.checks import check_real, check_sample_rate

    if not is_stdio(output) and output.endswith(DVQ_SUFFIX):
        raise UsageError(f"--stream writes a packet stream, not a {DVQ_SUFFIX} file: name the output "
                         "otherwise (e.g. .dvqs) or use - for standard output")
    rate = check_sample_rate(rate, "--rate")
    gain = 10.0 ** (check_real(gain_db, "--gain") / 20.0)
    check_distinct(input, output)
    _check_out(output, force)
    with _open_in(input, "raw PCM", AudioError) as src:
        name = model if model is not None else _builtin_causal()
        from codec.runtime.realtime import StreamEncoder  # numpy and a runtime: after the checks that need none

        codec_model = load(name)
        encoder = StreamEncoder(codec_model, sample_rate=rate, bitrate_kbps=bitrate, n_codebooks=n_codebooks,
                                gain=gain, frames_per_packet=frames_per_packet)
        with _open_out(output, force) as out:
            out.write(encoder.session_header)
            size = max(2, 2 * round(rate * READ_SECONDS))
            odd = b""
            while data := _read(src, size, "the input", AudioError):
                data = odd + data
                cut = len(data) - len(data) % 2
                odd = data[cut:]
                for packet in encoder.feed(np.frombuffer(data[:cut], dtype="<i2")):
                    out.write(packet)
            if odd:
                warnings.warn("the input ended inside a sample (an odd number of bytes): the last byte "
                              "was dropped", DiveqWarning, stacklevel=1)
            for packet in encoder.flush():
                out.write(packet)


def decode_stream(input: str, output: str, load: Callable[[str], Model], model: str | None,
                  force: bool) -> None:
    """``decode --stream``: packets in, raw s16le mono PCM at the session's rate out."""
    from codec.format.packets import read_packet, read_session

    check_distinct(input, output)
    _check_out(output, force)
    with _open_in(input, "a packet stream", BitstreamError) as src:
        session = read_session(src)  # fail on a bad stream before loading the model
        name = model if model is not None else _builtin_for_session(session)
        from codec.runtime.realtime import StreamDecoder  # numpy and a runtime: after the checks that need none

        codec_model = load(name)
        decoder = StreamDecoder(codec_model, session)
        with _open_out(output, force) as out:
            ended = False
            while (packet := read_packet(src, session)) is not None:
                if ended:
                    raise BitstreamError("corrupt packet stream: data after the end packet")
                out.write(_pcm16(decoder.feed(packet)))
                ended = decoder.ended
            if not ended:
                warnings.warn("the packet stream ended without its end packet (cut short?): decoded what "
                              "came", DiveqWarning, stacklevel=1)
                out.write(_pcm16(decoder.flush()))


def _pcm16(audio: np.ndarray) -> bytes:
    """Float samples -> signed 16-bit little-endian PCM (x 32768, rounded, clipped)."""
    return np.clip(np.rint(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()


__all__ = ["encode_stream", "decode_stream", "READ_SECONDS"]
