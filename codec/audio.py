"""Audio files in and out: reading (whole or in blocks), resampling, atomic writes.

Audio arrays are ``[C, T]`` float32 (C channels, T samples), nominally in [-1, 1]. File I/O uses
soundfile (libsndfile): wav, flac and ogg; 16/24-bit PCM or float. Resampling uses soxr, whole-signal
(:func:`resample`) or block by block (:class:`StreamResampler`, same output as the whole-signal call).
Every problem a user can cause raises :class:`~codec.errors.AudioError` (unreadable input) or
:class:`~codec.errors.UsageError` (an output that exists without ``force``, an unknown extension).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, UsageError

#: Extensions (lower case, with the dot) this module reads and writes.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

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


def _open(path: str | os.PathLike[str]) -> sf.SoundFile:
    p = _check_input(path)
    try:
        return sf.SoundFile(str(p))
    except _SF_ERRORS as exc:
        raise AudioError(f"not a readable audio file: {p} ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header information of an audio file (no samples are read)."""
    with _open(path) as f:
        return AudioInfo(str(path), int(f.samplerate), int(f.channels), int(f.frames), f.format,
                         f.subtype)


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
    f = _open(path)
    with f:
        offset = 0
        while True:
            try:
                data = f.read(block_size, dtype="float32", always_2d=True)
            except _SF_ERRORS as exc:
                raise AudioError(f"cannot read {path} at sample {offset}: {_one_line(exc)}") from None
            if data.shape[0] == 0:
                return
            block = np.ascontiguousarray(data.T)
            _check_finite(block, path, offset)
            offset += block.shape[1]
            yield block


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a whole file. Returns (audio float32 ``[C, T]``, sample rate in Hz).

    Raises AudioError for a missing, unreadable or non-audio file and for NaN/Inf samples.
    """
    f = _open(path)
    with f:
        rate = int(f.samplerate)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except _SF_ERRORS as exc:
            raise AudioError(f"cannot read {path}: {_one_line(exc)}") from None
    audio = np.ascontiguousarray(data.T)
    _check_finite(audio, path, 0)
    return audio, rate


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


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Raise UsageError if ``path`` is a folder, or exists and not ``force``; returns it as a Path."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"output is a folder: {target}")
    if target.exists() and not force:
        raise UsageError(f"output exists: {target} (use --force to overwrite)")
    return target


def _default_file_mode() -> int:
    """Permission bits of a file created normally here (0o666 minus the umask): temporary files are
    created 0o600, so an atomically written output gets these before it is renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Write a file atomically: yields a temporary path in the same folder; on success it is flushed
    to disk and renamed to ``path``; on any error (KeyboardInterrupt included) it is removed.

    An existing ``path`` is refused with UsageError unless ``force`` (checked before any work and again
    before the rename); the original file is untouched until the rename. The file ends up with the
    permissions of a normally created one (0o666 minus the umask). Every file the project writes
    (audio, streams, models, checkpoints, eval reports) goes through here.
    """
    target = check_output(path, force)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {folder}")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if target.exists() and not force:
            raise UsageError(f"output exists: {target} (use --force to overwrite)")
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable; not possible on every platform
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def output_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(libsndfile format, subtype) chosen from the extension: 16-bit PCM wav/flac, Vorbis ogg."""
    ext = Path(path).suffix.lower()
    if ext not in _OUTPUT_FORMATS:
        raise UsageError(f"unsupported audio output extension {ext or '(none)'!r} for {path} "
                         f"(use {', '.join(AUDIO_EXTENSIONS)})")
    return _OUTPUT_FORMATS[ext]


class AudioWriter:
    """Appends blocks ``[C, t]`` to an open soundfile, clipped to [-1, 1]."""

    def __init__(self, f: sf.SoundFile) -> None:
        self._f = f
        self.n_samples = 0

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``[C, t]`` (float, any t >= 0), converted in pieces of bounded size."""
        for start in range(0, block.shape[-1], DEFAULT_BLOCK_SIZE):
            piece = np.asarray(block[:, start:start + DEFAULT_BLOCK_SIZE], dtype=np.float32)
            self._f.write(np.ascontiguousarray(np.clip(piece, -1.0, 1.0).T))
            self.n_samples += piece.shape[-1]


@contextlib.contextmanager
def open_audio_output(path: str | os.PathLike[str], sample_rate: int, channels: int,
                      force: bool = False) -> Iterator[AudioWriter]:
    """An :class:`AudioWriter` on ``path``, written atomically (see :func:`atomic_output`).

    The format comes from the extension (:func:`output_format`); nothing is left behind on error.
    """
    fmt, subtype = output_format(path)
    if channels < 1:
        raise UsageError(f"cannot write audio with {channels} channels")
    with atomic_output(path, force) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=int(sample_rate), channels=int(channels),
                          format=fmt, subtype=subtype) as f:
            yield AudioWriter(f)


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
