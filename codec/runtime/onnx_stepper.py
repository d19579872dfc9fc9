"""Coding with a causal model frame by frame on onnxruntime: :class:`OnnxFrameEncoder` and
:class:`OnnxFrameDecoder` do what :class:`codec.runtime.stepper.FrameEncoder` / ``FrameDecoder`` do on torch,
with numpy arrays in and out and no torch, from the model's frame graphs (:mod:`codec.runtime.base`,
written by ``diveq-codec export-onnx`` for a causal model).

Each frame runs alone from the state the frames before it left, so the codes do not depend on how a
stream is cut into chunks. The arithmetic is the torch step's, run by onnxruntime: codes equal
torch's except on float near-ties (the export checks at least 99 % on a test signal), audio within
float rounding. Batch 1 (a stream is mono). The state has a fixed size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .base import FRAME_DECODER, FRAME_ENCODER, FRAME_LATENT, GRAPH_IO, check_causal, state_names

if TYPE_CHECKING:
    from .onnx_runtime import OnnxCodec


class _FrameGraph:
    """One frame graph's session and the state it carries from frame to frame (zeros at the start)."""

    def __init__(self, model: OnnxCodec, role: str) -> None:
        self.session = model.session(role)
        self.path = model.path
        inputs = self.session.get_inputs()
        self.first_in, self.first_out = GRAPH_IO[role]
        self.state_in, self.state_out = state_names(len(inputs) - 1)
        self.shapes = [tuple(int(d) for d in i.shape) for i in inputs[1:]]
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros(shape, dtype=np.float32) for shape in self.shapes]

    def run(self, value: np.ndarray) -> np.ndarray:
        feed: dict[str, Any] = dict(zip(self.state_in, self.state, strict=True))
        feed[self.first_in] = value
        try:
            out = self.session.run([self.first_out, *self.state_out], feed)
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(f"{self.path}: onnxruntime failed on a frame graph ({str(exc).strip()[:200]})") from None
        self.state = list(out[1:])
        return np.asarray(out[0])


class OnnxFrameEncoder:
    """Audio ``[1, t]`` float32 (model rate, any t >= 0 per call) -> codes ``[1, n, k]`` int64 of the
    frames it completes; :meth:`finish` gives the frames still owed once the input ends (the rules of
    :class:`codec.runtime.stepper.FrameEncoder`)."""

    def __init__(self, model: OnnxCodec, n_codebooks: int) -> None:
        check_causal(model)
        config = model.config
        self.n_codebooks = n_codebooks
        self.hop_length = config.hop_length
        self.lead = config.encoder_lookahead * config.stem_stride
        self._graph = _FrameGraph(model, FRAME_ENCODER)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the state of silence before it)."""
        self._graph.reset()
        self._pending = np.zeros((1, 0), dtype=np.float32)
        self._primed = self.lead == 0
        self._received = 0
        self.frames = 0

    def _prefill(self, audio: np.ndarray) -> None:
        """The stream's first ``lead`` samples join the analysis history (state 0), as
        :meth:`codec.models.causal_encoder.CausalSTFTEncoder.prefill`."""
        history = self._graph.state[0]
        self._graph.state[0] = np.concatenate([history, audio], axis=-1)[:, audio.shape[-1]:]

    def encode(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != 1:
            raise ValueError(f"audio must be [1, t], got {tuple(x.shape)}")
        self._received += x.shape[-1]
        x = np.concatenate([self._pending, x], axis=-1)
        if not self._primed and x.shape[-1] >= self.lead:
            self._prefill(x[:, :self.lead])
            x, self._primed = x[:, self.lead:], True
        n = x.shape[-1] // self.hop_length if self._primed else 0
        codes = [self._step(x[:, i * self.hop_length:(i + 1) * self.hop_length]) for i in range(n)]
        self._pending = x[:, n * self.hop_length:]
        return self._join(codes)

    def finish(self) -> np.ndarray:
        owed = -(-self._received // self.hop_length) - self.frames
        if owed <= 0:
            return self._join([])
        x, self._pending = self._pending, self._pending[:, :0]
        if not self._primed:  # less input than the look-ahead
            x = np.pad(x, ((0, 0), (0, self.lead - x.shape[-1])))
            self._prefill(x)
            x, self._primed = x[:, :0], True
        x = np.pad(x, ((0, 0), (0, owed * self.hop_length - x.shape[-1])))
        return self._join([self._step(x[:, i * self.hop_length:(i + 1) * self.hop_length]) for i in range(owed)])

    def _step(self, audio: np.ndarray) -> np.ndarray:
        self.frames += 1
        return self._graph.run(np.ascontiguousarray(audio))[:, :self.n_codebooks]

    def _join(self, codes: list[np.ndarray]) -> np.ndarray:
        if not codes:
            return np.zeros((1, self.n_codebooks, 0), dtype=np.int64)
        return np.concatenate(codes, axis=-1).astype(np.int64, copy=False)


class OnnxFrameDecoder:
    """Codes ``[1, n, k]`` (or latents ``[1, D, k]``) -> audio ``[1, k * hop_length]`` float32, trailing
    the frames by ``delay`` samples (the rules of :class:`codec.runtime.stepper.FrameDecoder`)."""

    def __init__(self, model: OnnxCodec) -> None:
        check_causal(model)
        config = model.config
        self.hop_length = config.hop_length
        self.head_hop = config.head_hop
        self.delay = config.lookahead * config.head_hop
        n_fft = 4 * config.head_hop  # the iSTFT head's window (codec.models.causal_decoder)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
        self._envelope = np.square(window).reshape(-1, self.head_hop).sum(axis=0).astype(np.float32)
        self._latent = _FrameGraph(model, FRAME_LATENT)
        self._graph = _FrameGraph(model, FRAME_DECODER)
        self._latent_dim = config.latent_dim
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._graph.reset()
        self._skip = self.delay
        self.frames = 0

    def latent(self, codes: np.ndarray) -> np.ndarray:
        """``[1, n, k]`` codes -> ``[1, D, k]`` the quantized latent the decoder reads."""
        c = np.ascontiguousarray(codes, dtype=np.int64)
        if c.shape[-1] == 0:
            return np.zeros((1, self._latent_dim, 0), np.float32)
        return self._latent.run(c)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """``[1, n, k]`` codes -> the next samples ``[1, k * hop_length]`` (fewer on the first call)."""
        return self.decode_latent(self.latent(codes))

    def decode_latent(self, latent: np.ndarray) -> np.ndarray:
        x = np.asarray(latent, dtype=np.float32)
        pieces = [self._graph.run(np.ascontiguousarray(x[..., i:i + 1])) for i in range(x.shape[-1])]
        self.frames += x.shape[-1]
        if not pieces:
            return np.zeros((1, 0), dtype=np.float32)
        audio = np.concatenate(pieces, axis=-1)
        if self._skip:
            cut = min(self._skip, audio.shape[-1])
            audio, self._skip = audio[:, cut:], self._skip - cut
        return audio.astype(np.float32, copy=False)

    def finish(self) -> np.ndarray:
        """The last ``delay`` samples after the final frame: the head's overlap-add carry (the last
        state) divided by the window envelope, as :meth:`codec.models.causal_decoder.CausalISTFTHead.finish`."""
        if self.frames == 0:
            return np.zeros((1, 0), dtype=np.float32)
        carry = self._graph.state[-1][:, :self.delay]
        audio = (carry.reshape(1, -1, self.head_hop) / self._envelope).reshape(1, -1)[:, self._skip:]
        self._skip = 0
        return audio.astype(np.float32, copy=False)
