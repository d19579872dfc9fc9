"""Coding with a causal model frame by frame: :class:`FrameEncoder` turns each ``hop_length`` samples
into one frame of codes as soon as they are in, :class:`FrameDecoder` turns each frame of codes into
``hop_length`` samples.

Every frame is computed alone, with the same tensor shapes, from the model's state after the frames
before it; so the codes do not depend on how a stream is cut into chunks (not even by float rounding,
which a batched computation of several frames would change), and a file coded this way
(``codec.runtime.streaming``) gets exactly the codes and samples a live stream gets. Batched over ``B``
items (a file's channels). Needs a causal model (``ModelConfig.causal``) in eval mode; coding does
not change it. The states have a fixed size: memory does not grow with the stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AudioError, BitstreamError
from .base import check_causal

if TYPE_CHECKING:
    from ..models.causal_decoder import CausalVocosDecoder
    from ..models.causal_encoder import CausalSTFTEncoder
    from ..models.model import Codec


def _device(model: Codec) -> torch.device:
    return next(model.parameters()).device


class FrameEncoder:
    """Audio ``[B, t]`` (model rate, any t >= 0 per call) -> codes ``[B, n, k]`` of the frames it
    completes.

    Frame i is complete once sample ``(i + 1) * hop_length + lead - 1`` is in, where ``lead`` is the
    encoder's look-ahead in samples (``ModelConfig.encoder_lookahead * stem_stride``; 0 by default).
    Samples short of a frame wait for the next call; once the input ends, :meth:`finish` gives the
    frames still owed (the last, partial one and the look-ahead completed with silence).

    Args:
        model: a causal codec in eval mode.
        n_codebooks: stages per frame, 1..model.n_codebooks.
        batch: B.
    """

    def __init__(self, model: Codec, n_codebooks: int, batch: int = 1) -> None:
        check_causal(model)
        self.model = model
        self.encoder = cast("CausalSTFTEncoder", model.encoder)
        self.n_codebooks = n_codebooks
        self.batch = batch
        self.hop_length = model.config.hop_length
        self.lead = self.encoder.lead
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the state of silence before it)."""
        self._state = self.encoder.initial_state(self.batch, _device(self.model))
        self._pending = torch.zeros(self.batch, 0, device=_device(self.model))  # samples not yet in a frame
        self._primed = self.lead == 0  # the first lead samples are in the analysis history
        self._received = 0  # samples given to encode()
        self.frames = 0

    @torch.inference_mode()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, t]`` float samples -> ``[B, n_codebooks, k]`` int64 codes (on the CPU) of the frames
        they complete."""
        if audio.dim() != 2 or audio.shape[0] != self.batch:
            raise ValueError(f"audio must be [{self.batch}, t], got {tuple(audio.shape)}")
        self._received += audio.shape[-1]
        x = torch.cat([self._pending, audio.to(_device(self.model), torch.float32)], dim=-1)
        if not self._primed and x.shape[-1] >= self.lead:
            self.encoder.prefill(x[:, :self.lead], self._state)
            x, self._primed = x[:, self.lead:], True
        n = x.shape[-1] // self.hop_length if self._primed else 0
        codes = [self._step(x[:, i * self.hop_length:(i + 1) * self.hop_length]) for i in range(n)]
        self._pending = x[:, n * self.hop_length:]
        return self._join(codes)

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """After the input's last samples: the frames still held ``[B, n_codebooks, k]``, their
        look-ahead completed with silence (k = 0 without look-ahead or before any input)."""
        owed = -(-self._received // self.hop_length) - self.frames
        if owed <= 0:
            return self._join([])
        x, self._pending = self._pending, self._pending[:, :0]
        if not self._primed:  # less input than the look-ahead
            x = F.pad(x, (0, self.lead - x.shape[-1]))
            self.encoder.prefill(x, self._state)
            x, self._primed = x[:, :0], True
        x = F.pad(x, (0, owed * self.hop_length - x.shape[-1]))
        return self._join([self._step(x[:, i * self.hop_length:(i + 1) * self.hop_length]) for i in range(owed)])

    def _step(self, audio: torch.Tensor) -> torch.Tensor:
        self.frames += 1
        return self.model.quantizer.encode(self.encoder.step(audio, self._state), self.n_codebooks)

    def _join(self, codes: list[torch.Tensor]) -> torch.Tensor:
        if not codes:
            return torch.zeros(self.batch, self.n_codebooks, 0, dtype=torch.int64)
        return torch.cat(codes, dim=-1).to("cpu", torch.int64)


class FrameDecoder:
    """Codes ``[B, n, k]`` (or latents ``[B, D, k]``) -> audio ``[B, k * hop_length]`` at the model rate.

    The output trails the frames by the decoder's ``delay`` (``lookahead * head_hop`` samples): the
    first call's output is ``delay`` samples short, and :meth:`finish` gives the last ``delay``
    samples once no frame follows; joined, the outputs are the frames' audio, ``hop_length`` samples
    per frame, aligned with the encoder's input.
    """

    def __init__(self, model: Codec, batch: int = 1) -> None:
        check_causal(model)
        self.model = model
        self.decoder = cast("CausalVocosDecoder", model.decoder)
        self.batch = batch
        self.hop_length = model.config.hop_length
        self.delay = self.decoder.delay
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._state = self.decoder.initial_state(self.batch, _device(self.model))
        self._skip = self.delay  # samples before the stream's start (the first windows' lead)
        self.frames = 0

    @torch.inference_mode()
    def latent(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, n, k]`` codes -> ``[B, D, k]`` the quantized latent the decoder reads."""
        return self.model.quantizer.decode(codes.to(_device(self.model), torch.int64))

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, n, k]`` codes -> the next samples ``[B, k * hop_length]`` (fewer on the first call),
        float32 on the CPU."""
        return self.decode_latent(self.latent(codes))

    @torch.inference_mode()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, D, k]`` latent frames -> the next samples, as :meth:`decode`."""
        pieces = [self.decoder.step(latent[..., i:i + 1], self._state)
                  for i in range(latent.shape[-1])]
        self.frames += latent.shape[-1]
        if not pieces:
            return torch.zeros(self.batch, 0)
        audio = torch.cat(pieces, dim=-1)
        if self._skip:
            cut = min(self._skip, audio.shape[-1])
            audio, self._skip = audio[:, cut:], self._skip - cut
        return audio.float().cpu()

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """The last ``delay`` samples ``[B, delay]`` after the final frame (none before any frame)."""
        if self.frames == 0:
            return torch.zeros(self.batch, 0)
        audio = self.decoder.finish(self._state)[:, self._skip:]
        self._skip = 0
        return audio.float().cpu()


# ---------------------------------------------------------------------------------------------
# Files: numpy blocks in, numpy chunks out (codec.runtime.streaming's windowed coder hands a causal model here)


def encode_frames(model: Codec, blocks: Iterable[np.ndarray], n_samples: int, n_codebooks: int,
                  chunk_frames: int, progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """Model-rate audio blocks ``[C, t]`` (``n_samples`` in all) -> codes ``[C, K, w]`` in chunks of
    ``chunk_frames`` frames (the last may be shorter), coded frame by frame: the codes a
    :class:`FrameEncoder` gives the whole signal, whatever the blocks."""
    n_frames = model.config.n_frames(n_samples)
    encoder: FrameEncoder | None = None
    held: list[np.ndarray] = []
    held_frames = done = received = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        received += block.shape[1]
        if encoder is None:
            encoder = FrameEncoder(model, n_codebooks, batch=block.shape[0])
        coded = [encoder.encode(torch.from_numpy(np.ascontiguousarray(block))).numpy()]
        if received >= n_samples:  # the last frames: completed with silence
            coded.append(encoder.finish().numpy())
        for codes in coded:
            if codes.shape[2]:
                held.append(codes)
                held_frames += codes.shape[2]
        while held_frames >= chunk_frames or (held_frames and done + held_frames == n_frames):
            codes = np.concatenate(held, axis=2)
            size = min(chunk_frames, held_frames)
            yield codes[:, :, :size]
            done += size
            held, held_frames = [codes[:, :, size:]], held_frames - size
            if progress is not None:
                progress(done, n_frames)
    if done != n_frames:
        raise AudioError(f"audio ended early ({received} of {n_samples} samples)")


def decode_frames(model: Codec, chunks: Iterable[np.ndarray], n_frames: int,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """Codes ``[C, K, t]`` in chunks (``n_frames`` in all) -> model-rate audio blocks ``[C, t']``,
    ``n_frames * hop_length`` samples in all, decoded frame by frame (what a :class:`FrameDecoder`
    gives)."""
    decoder: FrameDecoder | None = None
    done = 0
    for chunk in chunks:
        if decoder is None:
            decoder = FrameDecoder(model, batch=chunk.shape[0])
        yield decoder.decode(torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.int64))).numpy()
        done += chunk.shape[2]
        if progress is not None:
            progress(done, n_frames)
    if done != n_frames:
        raise BitstreamError(f"stream ended early ({done} of {n_frames} frames)")
    if decoder is not None:
        yield decoder.finish().numpy()


# ---------------------------------------------------------------------------------------------
# numpy in and out: what codec.runtime.realtime streams through (the interface of codec.runtime.onnx_stepper)


def _eval(model: Codec) -> contextlib.AbstractContextManager[None]:
    """Eval mode for the call (a model already in eval mode, as loaded, is left alone: switching
    walks every module, twice per call)."""
    from .torch_runtime import eval_mode

    return eval_mode(model) if model.training else contextlib.nullcontext()


class NumpyFrameEncoder:
    """:class:`FrameEncoder` of one stream with numpy arrays: audio ``[1, t]`` float32 -> codes ``[1, n,
    k]`` int64 (as :class:`codec.runtime.onnx_stepper.OnnxFrameEncoder`)."""

    def __init__(self, model: Codec, n_codebooks: int) -> None:
        self.model = model
        self._frames = FrameEncoder(model, n_codebooks)

    @property
    def n_codebooks(self) -> int:
        return self._frames.n_codebooks

    @n_codebooks.setter
    def n_codebooks(self, value: int) -> None:
        self._frames.n_codebooks = value

    def reset(self) -> None:
        self._frames.reset()

    def encode(self, audio: np.ndarray) -> np.ndarray:
        with _eval(self.model):
            return self._frames.encode(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).numpy()

    def finish(self) -> np.ndarray:
        with _eval(self.model):
            return self._frames.finish().numpy()


class NumpyFrameDecoder:
    """:class:`FrameDecoder` of one stream with numpy arrays: codes ``[1, n, k]`` -> latent ``[1, D, k]``
    -> audio ``[1, k * hop_length]`` float32 (as :class:`codec.runtime.onnx_stepper.OnnxFrameDecoder`)."""

    def __init__(self, model: Codec) -> None:
        self.model = model
        self._frames = FrameDecoder(model)

    def reset(self) -> None:
        self._frames.reset()

    def latent(self, codes: np.ndarray) -> np.ndarray:
        with _eval(self.model):
            return self._frames.latent(torch.from_numpy(np.ascontiguousarray(codes))).float().cpu().numpy()

    def decode_latent(self, latent: np.ndarray) -> np.ndarray:
        with _eval(self.model):
            x = torch.from_numpy(np.ascontiguousarray(latent, dtype=np.float32)).to(_device(self.model))
            return self._frames.decode_latent(x).numpy()

    def finish(self) -> np.ndarray:
        with _eval(self.model):
            return self._frames.finish().numpy()
