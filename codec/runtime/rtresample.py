"""A streaming resampler with a short, fixed delay, for real-time coding (:mod:`codec.runtime.realtime`).

The file path resamples with soxr's high-quality filter (:class:`codec.io.audio.StreamResampler`), which
releases its output in blocks: fed one sample at a time it holds samples back for up to ~37 ms, too
long for a stream whose codec latency is 50 ms. This one is a band-limited interpolator (a
Kaiser-windowed sinc, ``zeros`` zero crossings on each side of its centre, cut off at ``rolloff`` of
the lower rate's Nyquist frequency, each phase's taps summing to 1): output sample m, at input time
``t = m * sr_in / sr_out``, is the taps' sum over the input samples within ``half_width`` of t, and it
is emitted as soon as the last of them has arrived. At 48 -> 16 kHz that is 0.9 ms of delay, at 16 ->
48 kHz 1.1 ms. Input before the first sample is silence; :meth:`LowDelayResampler.flush` continues
with silence after the last one and ends the output at ``ceil(n_in * sr_out / sr_in)`` samples (as
the file path's resampling does). The output does not depend on how the input is cut into blocks.
Only numpy.
"""

from __future__ import annotations

import math

import numpy as np

#: Tables of taps up to this many phases (output samples per period of the two rates); beyond, the taps
#: are computed for each output sample.
MAX_TABLE_PHASES = 4096


class LowDelayResampler:
    """Blocks ``[C, t]`` at ``sr_in`` -> blocks ``[C, t']`` at ``sr_out`` (float32), with a fixed delay.

    Args:
        sr_in, sr_out: rates in Hz (positive integers).
        channels: C.
        zeros: zero crossings of the sinc on each side of its centre (the filter's length).
        rolloff: cut-off as a fraction of the lower rate's Nyquist frequency.
        beta: the Kaiser window's shape (stop-band attenuation ~ 80 dB at 8).
    """

    def __init__(self, sr_in: int, sr_out: int, channels: int = 1, zeros: int = 16,
                 rolloff: float = 0.92, beta: float = 8.0) -> None:
        g = math.gcd(int(sr_in), int(sr_out))
        self.sr_in, self.sr_out, self.channels = int(sr_in), int(sr_out), int(channels)
        self.up, self.down = self.sr_out // g, self.sr_in // g
        self.cutoff = min(1.0, self.up / self.down) * rolloff  # of the input's Nyquist frequency
        self.half_width = zeros / self.cutoff  # input samples on each side of an output's time
        self.taps = math.ceil(self.half_width)  # K: taps n0 - K + 1 .. n0 + K around n0 = floor(t)
        self.beta = beta
        self._offsets = np.arange(1 - self.taps, self.taps + 1)  # [2K]
        self._table = (self._weights(np.arange(self.up) / self.up)
                       if self.up <= MAX_TABLE_PHASES and self.up != self.down else None)
        self.reset()

    @property
    def identity(self) -> bool:
        return self.up == self.down

    def reset(self) -> None:
        """Start a new stream."""
        self.n_in = 0  # input samples received
        self.n_out = 0  # output samples emitted
        # input history from absolute index self._start on; silence before the stream
        self._start = -self.taps
        self._buf = np.zeros((self.channels, self.taps), dtype=np.float32)

    def _weights(self, frac: np.ndarray) -> np.ndarray:
        """Taps ``[M, 2K]`` for outputs at fractional positions ``frac`` [M] past their n0."""
        x = frac[:, None] - self._offsets[None, :]  # t - n for each tap
        inside = np.abs(x) < self.half_width
        ratio = np.where(inside, x / self.half_width, 0.0)
        window = np.where(inside, np.i0(self.beta * np.sqrt(np.maximum(0.0, 1.0 - ratio ** 2))), 0.0)
        h = np.sinc(self.cutoff * x) * window
        return (h / h.sum(axis=1, keepdims=True)).astype(np.float32)

    def available(self, m: np.ndarray) -> np.ndarray:
        """Input samples that must have arrived before output sample ``m`` (int64 array) is emitted."""
        return m + 1 if self.identity else (m * self.down) // self.up + self.taps + 1

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next input block ``[C, t]`` -> every output sample it completes ``[C, t']``."""
        x = np.asarray(x, dtype=np.float32).reshape(self.channels, -1)
        if self.identity:
            self.n_in += x.shape[1]
            self.n_out += x.shape[1]
            return x
        self._buf = np.concatenate([self._buf, x], axis=1)
        self.n_in += x.shape[1]
        return self._emit(self.n_in)

    def flush(self) -> np.ndarray:
        """The rest of the output ``[C, t']``, up to ``ceil(n_in * sr_out / sr_in)`` samples in all,
        with silence after the input's end. The stream then takes no more input until :meth:`reset`."""
        total = -(-self.n_in * self.up // self.down)
        if self.identity or self.n_out >= total:
            return np.zeros((self.channels, 0), dtype=np.float32)
        self._buf = np.concatenate([self._buf, np.zeros((self.channels, self.taps + 1), np.float32)], axis=1)
        return self._emit(self.n_in + self.taps + 1, limit=total)

    def _emit(self, have: int, limit: int | None = None) -> np.ndarray:
        """Outputs from n_out on whose taps lie below ``have`` (absolute input index), at most up to
        ``limit``; drops the history no later output needs."""
        # output m needs (m * down) // up + K <= have - 1
        last = ((have - 1 - self.taps + 1) * self.up - 1) // self.down  # largest m with n0 <= have - 1 - K
        end = last + 1 if limit is None else min(last + 1, limit)
        if end <= self.n_out:
            return np.zeros((self.channels, 0), dtype=np.float32)
        m = np.arange(self.n_out, end)
        n0 = (m * self.down) // self.up
        phase = (m * self.down) % self.up
        weights = self._table[phase] if self._table is not None else self._weights(phase / self.up)
        index = n0[:, None] + self._offsets[None, :] - self._start  # [M, 2K] into the history
        y = np.einsum("cmk,mk->cm", self._buf[:, index], weights, dtype=np.float32)
        self.n_out = end
        keep_from = (end * self.down) // self.up - self.taps + 1  # the next output's first tap
        drop = max(0, keep_from - self._start)
        self._buf, self._start = self._buf[:, drop:], self._start + drop
        return y.astype(np.float32, copy=False)
