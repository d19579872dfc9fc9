"""Audio files in and out: reading (whole or in blocks), resampling, writing.

Audio arrays are ``[C, T]`` float32 (C channels, T samples), nominally in [-1, 1]. File I/O uses
soundfile (libsndfile): it reads wav, flac, ogg (Vorbis, Opus), mp3, aiff, au, caf, w64 (16/24/32-bit
PCM or float; :data:`INPUT_EXTENSIONS`) and writes 16-bit wav/flac or Vorbis ogg. An input is opened
once (:func:`open_input`): standard input (``-``), FIFOs and devices are copied to a temporary file
first, since they can be read only once and the encoder reads twice. Resampling uses soxr,
whole-signal (:func:`resample`) or block by block (:class:`StreamResampler`, same output as the
whole-signal call). Outputs are written atomically (:mod:`codec.io.fileio`). Every problem a user can
cause raises :class:`~codec.errors.AudioError` (unreadable input), :class:`~codec.errors.UsageError`
(an output that exists without ``force``, an unknown extension) or :class:`~codec.errors.OutputError`
(an output that cannot be written).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import struct
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError, DiveqWarning, OutputError, UsageError
from .fileio import atomic_output, check_output, describe_os_error, is_stdio, is_stream_output, spool_to_file

#: Extensions (lower case, with the dot) this module writes.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
#: Extensions of the formats libsndfile reads (what a folder of inputs is searched for). A single
#: file is read whatever its name, by its content.
INPUT_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".au", ".snd", ".caf", ".w64", ".rf64")

#: Output extension -> (libsndfile major format, subtype).
_OUTPUT_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}

#: Samples per block of the streaming reader (per channel).
DEFAULT_BLOCK_SIZE = 1 << 16

_SF_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate (Hz), channels, length in samples per channel, format."""

    path: str
    sample_rate: int
    channels: int
    n_samples: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0


def _check_input(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"no such file: {p}")
    if p.is_dir():
        raise AudioError(f"is a folder, not an audio file: {p}")
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _sf_open(fd: int, name: str) -> sf.SoundFile:
    """libsndfile on the open file ``fd`` (which stays ours to close)."""
    try:
        return sf.SoundFile(fd, closefd=False)
    except _SF_ERRORS as exc:
        raise AudioError(f"not a readable audio file: {name} ({_one_line(exc)})") from None


def _declared_wav_frames(fd: int) -> int | None:
    """Sample frames the ``data`` chunk of a RIFF WAV declares (None: not a plain RIFF WAV, or a
    streaming writer's "unknown length" size of 0 or >= 0x7fff0000)."""
    def read(offset: int, size: int) -> bytes:
        return os.pread(fd, size, offset)

    try:
        if read(0, 4) != b"RIFF" or read(8, 4) != b"WAVE":
            return None
        offset, block_align = 12, 0
        for _ in range(1000):
            head = read(offset, 8)
            if len(head) < 8:
                return None
            kind, size = head[:4], struct.unpack("<I", head[4:])[0]
            if kind == b"fmt ":
                fmt = read(offset + 8, 16)
                block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) == 16 else 0
            elif kind == b"data":
                if not block_align or size == 0 or size >= 0x7FFF0000:
                    return None
                return size // block_align
            offset += 8 + size + (size & 1)
    except OSError:
        return None
    return None


def _warn_if_truncated(fd: int, f: sf.SoundFile, name: str) -> None:
    if f.format not in ("WAV", "WAVEX"):
        return
    declared = _declared_wav_frames(fd)
    if declared is not None and declared > f.frames:
        warnings.warn(f"{name}: the WAV header declares {declared} samples per channel but the file "
                      f"holds {f.frames} (truncated?); coding the {f.frames} present",
                      DiveqWarning, stacklevel=4)


class AudioInput:
    """An open audio input, read from the start as often as needed (:meth:`blocks`).

    Made by :func:`open_input`; ``info`` is what its header says, ``name`` how messages call it.
    """

    def __init__(self, f: sf.SoundFile, name: str) -> None:
        self._f = f
        self.name = name
        self.info = AudioInfo(name, int(f.samplerate), int(f.channels), int(f.frames), f.format,
                              f.subtype)

    def blocks(self, block_size: int = DEFAULT_BLOCK_SIZE) -> Iterator[np.ndarray]:
        """Read from the start, block by block: float32 arrays ``[C, t]``, t <= ``block_size``.

        Memory stays bounded by one block whatever the length. Raises AudioError for a read error
        part-way or NaN/Inf samples (naming the first bad sample).
        """
        try:
            self._f.seek(0)
        except _SF_ERRORS as exc:
            raise AudioError(f"cannot read {self.name}: {_one_line(exc)}") from None
        offset = 0
        while True:
            try:
                data = self._f.read(block_size, dtype="float32", always_2d=True)
            except _SF_ERRORS as exc:
                raise AudioError(f"cannot read {self.name} at sample {offset}: {_one_line(exc)}") from None
            if data.shape[0] == 0:
                return
            block = np.ascontiguousarray(data.T)
            _check_finite(block, self.name, offset)
            offset += block.shape[1]
            yield block


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[AudioInput]:
    """Open an audio input once: a file (any format libsndfile reads, by its content), ``-`` for
    standard input, or a FIFO / device such as ``/dev/stdin`` (these two are copied to a temporary
    file first, which is removed on exit). Warns (:class:`~codec.errors.DiveqWarning`) when a WAV's
    header declares more samples than the file holds. Raises AudioError for a missing, unreadable or
    non-audio input."""
    with contextlib.ExitStack() as stack:
        if is_stdio(path):
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError("standard input is a terminal: pipe audio into it, or give a file name "
                                 "instead of -")
            tmp = stack.enter_context(spool_to_file(sys.stdin.buffer, "standard input", AudioError))
            name, fd = "standard input", os.open(tmp, os.O_RDONLY)
        else:
            p = _check_input(path)
            name = str(p)
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError as exc:
                raise AudioError(f"cannot read {p}: {describe_os_error(exc)}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # FIFO, device: readable once
                with open(fd, "rb") as reader:
                    tmp = stack.enter_context(spool_to_file(reader, name, AudioError))
                fd = os.open(tmp, os.O_RDONLY)
        stack.callback(os.close, fd)
        f = _sf_open(fd, name)
        stack.callback(f.close)
        _warn_if_truncated(fd, f, name)
        yield AudioInput(f, name)


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header information of an audio file (no samples are read)."""
    with open_input(path) as src:
        return dataclasses.replace(src.info, path=str(path))


def _check_finite(block: np.ndarray, path: str | os.PathLike[str], offset: int) -> None:
    """Raise AudioError if ``block`` ``[C, t]`` holds NaN/Inf; ``offset`` is its first sample index."""
    finite = np.isfinite(block)
    if not finite.all():
        bad = int(np.argwhere(~finite)[0, 1]) + offset
        raise AudioError(f"{path}: non-finite sample (NaN or Inf) at sample {bad}")


def iter_blocks(path: str | os.PathLike[str],
                block_size: int = DEFAULT_BLOCK_SIZE) -> Iterator[np.ndarray]:
    """Read a file block by block: yields float32 arrays ``[C, t]``, t <= ``block_size``.

    Memory stays bounded by one block whatever the file's length. Raises AudioError for an unreadable
    file, a read error part-way, or NaN/Inf samples (naming the first bad sample).
    """
    with open_input(path) as src:
        yield from src.blocks(block_size)


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a whole file. Returns (audio float32 ``[C, T]``, sample rate in Hz).

    Raises AudioError for a missing, unreadable or non-audio file and for NaN/Inf samples.
    """
    with open_input(path) as src:
        blocks = list(src.blocks(1 << 20))
        rate = src.info.sample_rate
        channels = src.info.channels
    audio = (np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), dtype=np.float32))
    return np.ascontiguousarray(audio), rate


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``x`` ``[C, T]`` from ``sr_in`` to ``sr_out`` Hz (soxr, high quality).

    Returns float32 ``[C, T']`` with T' = round(T * sr_out / sr_in) (soxr's length).
    """
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out or x.shape[-1] == 0:
        if sr_in == sr_out:
            return x
        return np.zeros((x.shape[0], 0), dtype=np.float32)
    y = soxr.resample(x.T, sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1, x.shape[0]).T)


class StreamResampler:
    """Block-by-block resampler of ``channels``-channel audio; the blocks it returns, joined, equal
    :func:`resample` of the joined input.

    Call :meth:`process` with each block ``[C, t]`` and ``last=True`` on the final one (it may be empty).
    """

    def __init__(self, sr_in: int, sr_out: int, channels: int) -> None:
        self.sr_in, self.sr_out, self.channels = int(sr_in), int(sr_out), int(channels)
        self._stream = (None if self.sr_in == self.sr_out else
                        soxr.ResampleStream(self.sr_in, self.sr_out, self.channels,
                                            dtype="float32", quality="HQ"))

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next block ``x`` ``[C, t]``; returns float32 ``[C, t']`` (t' may be 0)."""
        x = np.asarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=last)
        return np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1, self.channels).T)


def output_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(libsndfile format, subtype) chosen from the extension: 16-bit PCM wav/flac, Vorbis ogg; ``-``
    (standard output), and a name of standard output, a FIFO or a character device without one of
    these extensions (``/dev/stdout``), is 16-bit wav."""
    if is_stdio(path):
        return _OUTPUT_FORMATS[".wav"]
    ext = Path(path).suffix.lower()
    if ext not in _OUTPUT_FORMATS and is_stream_output(path):
        return _OUTPUT_FORMATS[".wav"]
    if ext not in _OUTPUT_FORMATS:
        raise UsageError(f"unsupported audio output extension {ext or '(none)'!r} for {path} "
                         f"(use {', '.join(AUDIO_EXTENSIONS)}, or - for wav on standard output)")
    return _OUTPUT_FORMATS[ext]


def _write_error(target: str | os.PathLike[str], exc: Exception) -> OutputError:
    """OutputError for a libsndfile write failure: the system's reason when libsndfile reports a
    system error (errno kept by soundfile's cffi binding), else libsndfile's own message."""
    where = "standard output" if is_stdio(target) else str(target)
    code = getattr(getattr(sf, "_ffi", None), "errno", 0) if getattr(exc, "code", None) == 2 else 0
    reason = (describe_os_error(OSError(code, os.strerror(code))) if code
              else f"libsndfile: {_one_line(exc)}")
    return OutputError(f"cannot write {where}: {reason}")


class AudioWriter:
    """Appends blocks ``[C, t]`` to an open soundfile, clipped to [-1, 1]."""

    def __init__(self, f: sf.SoundFile, target: str | os.PathLike[str] = "") -> None:
        self._f = f
        self._target = target
        self.n_samples = 0

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``[C, t]`` (float, any t >= 0), converted in pieces of bounded size.
        Raises OutputError when the file cannot be written (disk full, file size limit, ...)."""
        for start in range(0, block.shape[-1], DEFAULT_BLOCK_SIZE):
            piece = np.asarray(block[:, start:start + DEFAULT_BLOCK_SIZE], dtype=np.float32)
            try:
                self._f.write(np.ascontiguousarray(np.clip(piece, -1.0, 1.0).T))
            except _SF_ERRORS as exc:
                raise _write_error(self._target, exc) from None
            self.n_samples += piece.shape[-1]


@contextlib.contextmanager
def open_audio_output(path: str | os.PathLike[str], sample_rate: int, channels: int,
                      force: bool = False) -> Iterator[AudioWriter]:
    """An :class:`AudioWriter` on ``path`` (``-``: standard output, as wav), written atomically (see
    :func:`codec.io.fileio.atomic_output`).

    The format comes from the extension (:func:`output_format`); nothing is left behind on error.
    """
    fmt, subtype = output_format(path)
    if channels < 1:
        raise UsageError(f"cannot write audio with {channels} channels")
    with atomic_output(path, force) as tmp:
        try:
            f = sf.SoundFile(str(tmp), "w", samplerate=int(sample_rate), channels=int(channels),
                             format=fmt, subtype=subtype)
        except _SF_ERRORS as exc:
            raise _write_error(path, exc) from None
        try:
            yield AudioWriter(f, path)
        except BaseException:
            with contextlib.suppress(*_SF_ERRORS):
                f.close()
            raise
        try:
            f.close()  # writes the final header: can fail too
        except _SF_ERRORS as exc:
            raise _write_error(path, exc) from None


def write_audio(path: str | os.PathLike[str], x: np.ndarray, sample_rate: int,
                force: bool = False) -> None:
    """Write ``x`` ``[C, T]`` (clipped to [-1, 1]) at ``sample_rate`` Hz, atomically.

    16-bit PCM for .wav and .flac, Vorbis for .ogg. An existing file is kept unless ``force``.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise UsageError(f"audio to write must be [C, T], got shape {tuple(x.shape)}")
    with open_audio_output(path, sample_rate, x.shape[0], force) as writer:
        writer.write(x)


__all__ = ["AUDIO_EXTENSIONS", "INPUT_EXTENSIONS", "DEFAULT_BLOCK_SIZE", "AudioInfo", "AudioInput",
           "open_input", "audio_info", "iter_blocks", "read_audio", "resample", "StreamResampler",
           "check_output", "atomic_output", "output_format", "AudioWriter", "open_audio_output",
           "write_audio"]
