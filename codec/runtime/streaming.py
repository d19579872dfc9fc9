"""Coding long signals with bounded memory: numpy blocks in, numpy blocks out.

Audio flows as blocks ``[C, t]`` (channels are the model's batch dimension), codes as chunks
``[C, K, t]``. The encoder side gains and resamples blocks to the model's rate
(:func:`to_model_rate`) and codes them in windows of ``window`` frames, each with ``context`` frames
of real signal on both sides, keeping only the centre's codes (:func:`encode_windows`); the decoder
side mirrors it (:func:`decode_windows`, :func:`from_model_rate`). Only a window plus its context is
ever held, so memory does not grow with duration. The model is reached through the window interface
of :mod:`codec.runtime.base` (onnxruntime or torch, numpy arrays either way): one windowing for both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import check_integer
from ..errors import AudioError, BitstreamError, UsageError
from ..format.streamheader import MAX_CHUNK_CODES, MAX_CHUNK_FRAMES, model_length
from ..io import audio as audio_io

if TYPE_CHECKING:
    from ..format.bitstream import StreamHeader
    from .base import CodecRuntime

#: Seconds of signal coded per window, and seconds of context on each side of a window.
WINDOW_SECONDS, CONTEXT_SECONDS = 10.0, 1.0

#: Loudness normalisation: target RMS (-20 dBFS), the largest gain (+40 dB), peak bound after the
#: gain, and the RMS below which a channel is silent (gain 1). There is no smallest gain: any finite
#: float32 amplitude is brought down to the target (the stream stores gains as float32).
TARGET_RMS, MAX_GAIN, PEAK_LIMIT, SILENT_RMS = 0.1, 100.0, 0.99, 1e-5

#: progress(frames_done, frames_total), called after each window.
Progress = Callable[[int, int], None]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def loudness_gains(sum_sq: np.ndarray, peak: np.ndarray, n_samples: int) -> tuple[float, ...]:
    """Per-channel linear gains bringing the RMS to TARGET_RMS (bounded by MAX_GAIN and PEAK_LIMIT),
    rounded to float32 (as the stream stores them). Any finite amplitude gets a positive gain."""
    rms = np.sqrt(sum_sq / max(n_samples, 1))
    gain = np.where(rms > SILENT_RMS, TARGET_RMS / np.maximum(rms, SILENT_RMS), 1.0)
    gain = np.minimum(gain, PEAK_LIMIT / np.maximum(peak, 1e-30))
    gain = np.minimum(gain, MAX_GAIN)
    return tuple(float(max(np.float32(g), np.float32(np.finfo(np.float32).smallest_subnormal)))
                 for g in gain)


class Stats:
    """Running sum of squares, peak and length per channel over blocks ``[C, t]`` (in float64, so
    that any finite float32 amplitude is measured without overflow)."""

    def __init__(self, channels: int) -> None:
        self.sum_sq = np.zeros(channels, dtype=np.float64)
        self.peak = np.zeros(channels, dtype=np.float64)
        self.n_samples = 0

    def add(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        self.sum_sq += np.einsum("ct,ct->c", block, block, dtype=np.float64)
        self.peak = np.maximum(self.peak, np.maximum(block.max(axis=1), -block.min(axis=1)))
        self.n_samples += block.shape[1]


def window_frames(model: Any, window: int | None, context: int | None) -> tuple[int, int]:
    """(window, context) in frames for ``model`` (anything with a ``config``): the given values, or
    WINDOW_SECONDS / CONTEXT_SECONDS."""
    rate = model.config.frame_rate
    w = max(1, round(WINDOW_SECONDS * rate)) if window is None else check_integer(window, "window")
    c = max(1, math.ceil(CONTEXT_SECONDS * rate)) if context is None else check_integer(context, "context")
    if w < 1 or c < 0:
        raise UsageError(f"window must be >= 1 frame and context >= 0 frames, got {w}, {c}")
    return w, c


def check_window(window: int, channels: int, n_codebooks: int) -> int:
    """``window`` (frames), or UsageError naming it when it is longer than a stream chunk can be for
    ``channels`` x ``n_codebooks`` (an encoder's window is its stream's chunk: at most
    MAX_CHUNK_FRAMES frames and MAX_CHUNK_CODES codes)."""
    most = min(MAX_CHUNK_FRAMES, MAX_CHUNK_CODES // max(1, channels * n_codebooks))
    if window > most:
        raise UsageError(f"window must be at most {most} frames for {channels} channel(s) at "
                         f"{n_codebooks} stage(s) (one stream chunk), got {window}")
    return window


# ---------------------------------------------------------------------------------------------
# Resampling stages


def _fit_length(blocks: Iterable[np.ndarray], channels: int, total: int) -> Iterator[np.ndarray]:
    """Cut or zero-pad a stream of blocks ``[C, t]`` to exactly ``total`` samples."""
    done = 0
    for block in blocks:
        block = block[:, : total - done]
        done += block.shape[1]
        if block.shape[1]:
            yield block
    if done < total:
        yield np.zeros((channels, total - done), dtype=np.float32)


def _pieces(blocks: Iterable[np.ndarray],
            size: int = audio_io.DEFAULT_BLOCK_SIZE) -> Iterator[np.ndarray]:
    """Split blocks ``[C, t]`` into views of at most ``size`` samples (bounds temporary copies)."""
    for block in blocks:
        for start in range(0, block.shape[1], size):
            yield block[:, start:start + size]


def to_model_rate(blocks: Iterable[np.ndarray], header: StreamHeader) -> Iterator[np.ndarray]:
    """Input-rate blocks -> gained, model-rate blocks, exactly model_length() samples in all."""
    gains = np.asarray(header.gains, dtype=np.float32)[:, None]
    resampler = audio_io.StreamResampler(header.sample_rate, header.model_sample_rate, header.channels)
    n_in = 0

    def resampled() -> Iterator[np.ndarray]:
        nonlocal n_in
        for block in _pieces(blocks):
            n_in += block.shape[1]
            yield resampler.process(block * gains)
        yield resampler.process(np.zeros((header.channels, 0), dtype=np.float32), last=True)

    total = model_length(header.n_samples, header.sample_rate, header.model_sample_rate)
    yield from _fit_length(resampled(), header.channels, total)
    if n_in != header.n_samples:
        raise AudioError(f"the input changed while it was read ({n_in} samples, expected "
                         f"{header.n_samples})")


def _ungain(block: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``block / gains`` rounded to float32 (the same values as a float32 division: the quotient is
    rounded once more from float64, which is exact for division), clipped to float32's finite range,
    so that a tiny gain (a very loud input) cannot overflow to Inf."""
    return np.clip(block / gains, -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)


def from_model_rate(blocks: Iterable[np.ndarray], header: StreamHeader) -> Iterator[np.ndarray]:
    """Decoded model-rate blocks -> un-gained blocks at the original rate, exactly n_samples."""
    gains = np.asarray(header.gains, dtype=np.float64)[:, None]
    total_model = model_length(header.n_samples, header.sample_rate, header.model_sample_rate)
    resampler = audio_io.StreamResampler(header.model_sample_rate, header.sample_rate, header.channels)

    def resampled() -> Iterator[np.ndarray]:
        for block in _pieces(_fit_length(blocks, header.channels, total_model)):
            yield resampler.process(_ungain(block, gains))
        yield resampler.process(np.zeros((header.channels, 0), dtype=np.float32), last=True)

    yield from _fit_length(resampled(), header.channels, header.n_samples)


# ---------------------------------------------------------------------------------------------
# Windowed coding


class _Sliding:
    """Blocks concatenated along their last axis, addressed by absolute index along it.

    ``fill(n)`` pulls blocks until index ``n`` is buffered, ``take(a, b)`` copies ``[a, b)`` out,
    ``drop_before(i)`` forgets everything before ``i``: at most a window plus context stays held.
    """

    def __init__(self, blocks: Iterable[np.ndarray], dtype: type | None = None) -> None:
        self._it = iter(blocks)
        self._dtype = dtype
        self._buf: np.ndarray | None = None
        self._start = 0  # absolute index of _buf[..., 0]
        self._exhausted = False

    @property
    def end(self) -> int:
        """One past the last buffered index."""
        return self._start + (0 if self._buf is None else self._buf.shape[-1])

    def fill(self, need: int) -> bool:
        """Buffer up to index ``need``; False when the blocks ran out first."""
        while not self._exhausted and self.end < need:
            try:
                block = next(self._it)
            except StopIteration:
                self._exhausted = True
                break
            if self._dtype is not None:
                block = np.asarray(block, dtype=self._dtype)
            self._buf = block if self._buf is None else np.concatenate([self._buf, block], axis=-1)
        return self.end >= need

    def take(self, a: int, b: int) -> np.ndarray:
        assert self._buf is not None and self._start <= a <= b <= self.end
        return np.ascontiguousarray(self._buf[..., a - self._start: b - self._start])

    def drop_before(self, index: int) -> None:
        drop = max(0, index - self._start)
        if self._buf is not None and drop:
            self._buf, self._start = self._buf[..., drop:], self._start + drop

    def drain(self) -> None:
        """Consume the remaining blocks (so checks at the end of a generator chain run)."""
        for _ in self._it:
            pass


def _frame_by_frame(model: CodecRuntime) -> bool:
    """Whether ``model`` codes files frame by frame: a causal model on the torch runtime (the onnx
    runtime's graphs code whole windows)."""
    return bool(getattr(model.config, "causal", False)) and getattr(model, "runtime", "torch") == "torch"


def encode_windows(model: CodecRuntime, blocks: Iterable[np.ndarray], n_samples: int, n_codebooks: int,
                   window: int, context: int, progress: Progress | None) -> Iterator[np.ndarray]:
    """Model-rate audio blocks ``[C, t]`` (``n_samples`` in all) -> codes ``[C, K, w]`` per window
    (w = ``window`` except the last), each window encoded with ``context`` frames on both sides. A
    causal model on the torch runtime codes the whole signal frame by frame instead (no context
    needed: :func:`codec.runtime.stepper.encode_frames`), so its codes are a live stream's; on the
    onnx runtime it codes windows like any model (the same codes up to float rounding on near-ties,
    as between the runtimes for every model)."""
    if _frame_by_frame(model):
        from .stepper import encode_frames

        torch_model: Any = getattr(model, "model", model)  # the Codec inside a TorchRuntime
        yield from encode_frames(torch_model, blocks, n_samples, n_codebooks, window, progress)
        return
    hop = model.config.hop_length
    n_frames = model.config.n_frames(n_samples)
    audio = _Sliding(blocks)
    frame = 0  # first frame of the next window
    while frame < n_frames:
        end_frame = min(frame + window, n_frames)
        need = min(n_samples, (end_frame + context) * hop)
        if not audio.fill(need):
            raise AudioError(f"audio ended early ({audio.end} of {n_samples} samples)")
        first = max(0, frame - context)
        segment = audio.take(first * hop, need)
        codes = model.encode_window(segment, n_codebooks)
        keep = codes[:, :, frame - first: end_frame - first]
        if keep.shape[2] != end_frame - frame:
            raise RuntimeError(f"the model gave {codes.shape[2]} frames for {segment.shape[1]} "
                               f"samples (hop {hop})")
        yield keep
        frame = end_frame
        audio.drop_before((frame - context) * hop)
        if progress is not None:
            progress(frame, n_frames)
    audio.drain()


def decode_windows(model: CodecRuntime, chunks: Iterable[np.ndarray], n_frames: int, window: int,
                   context: int, progress: Progress | None) -> Iterator[np.ndarray]:
    """Codes ``[C, K, t]`` in chunks (``n_frames`` in all) -> model-rate audio ``[C, t * hop]`` per
    window, each window decoded with ``context`` frames on both sides and trimmed to its centre. A
    causal model on the torch runtime decodes frame by frame instead
    (:func:`codec.runtime.stepper.decode_frames`)."""
    if _frame_by_frame(model):
        from .stepper import decode_frames

        torch_model: Any = getattr(model, "model", model)  # the Codec inside a TorchRuntime
        yield from decode_frames(torch_model, chunks, n_frames, progress)
        return
    hop = model.config.hop_length
    codes = _Sliding(chunks, dtype=np.int64)
    frame = 0
    while frame < n_frames:
        end_frame = min(frame + window, n_frames)
        need = min(n_frames, end_frame + context)
        if not codes.fill(need):
            raise BitstreamError(f"stream ended early ({codes.end} of {n_frames} frames)")
        first = max(0, frame - context)
        segment = codes.take(first, need)
        audio = model.decode_window(segment)
        start = (frame - first) * hop
        yield audio[:, start: start + (end_frame - frame) * hop]
        frame = end_frame
        codes.drop_before(frame - context)
        if progress is not None:
            progress(frame, n_frames)
