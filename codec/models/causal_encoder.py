"""The causal STFT encoder: :class:`~codec.models.stft_encoder.STFTEncoder`'s layers (same parameter names and
shapes) with every analysis window ending at its hop and every convolution padded on the left, so a
latent frame depends on the audio up to its own end and nothing later.

Timing: with a look-ahead of L STFT hops (``ModelConfig.encoder_lookahead``), STFT frame j covers
samples ``[(j + 1 + L) * hop - n_fft, (j + 1 + L) * hop)`` (zeros outside the signal), the embedding
and ConvNeXt convolutions see frames up to their own, and the strided convolution's output frame i
sees STFT frames up to ``(i + 1) * rate - 1``; so latent frame i (samples ``[i * hop_length,
(i + 1) * hop_length)``) is known as soon as sample ``(i + 1) * hop_length + L * hop - 1`` has
arrived: the encoder adds ``L * hop`` samples of delay to its frame (none with L = 0; with L = 1 the
windows lie where the offline encoder's centred windows do, n_fft = 4 hops).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.causal import CausalChannelNorm, CausalConv1d, CausalConvNeXtBlock, initial_states, step_sequential
from ..nn.spectral import analysis_kernel
from .encoder import rms_normalize
from .stft_encoder import INPUT_POWER


def compressed_spectrum(frames: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Frames ``[B, F, n_fft]`` -> ``[B, F, 2 * (n_fft / 2 + 1)]`` (time-major): real and imaginary
    parts of each windowed frame's spectrum S, power-compressed to |S|^0.3 S/|S| (as the offline
    encoder reads it). ``kernel``: :func:`~codec.nn.spectral.analysis_kernel` (real-valued, so the
    encoder exports to ONNX)."""
    spec = frames.float() @ kernel  # [B, F, 2 * bins]: real parts, then imaginary parts
    real, imag = spec.chunk(2, dim=-1)
    scale = (real.square() + imag.square() + 1e-8).pow((INPUT_POWER - 1.0) / 2.0)
    return spec * scale.repeat(1, 1, 2)


class CausalSTFTEncoder(nn.Module):
    """Audio [B, 1, T] -> latent [B, latent_dim, T / hop_length], every frame at unit RMS, causally.

    Args as :class:`~codec.models.stft_encoder.STFTEncoder` (hop, dim, depth, rates, latent_dim), and
    ``lookahead``: the STFT hops each analysis window reaches past its frame (module docstring). T
    must be a multiple of ``hop_length = hop * prod(rates)``. :meth:`step` codes one latent frame at a
    time, after :meth:`prefill` has taken the first ``lead = lookahead * hop`` samples.
    """

    window: torch.Tensor  # buffer

    def __init__(self, hop: int, dim: int, depth: int, rates: tuple[int, ...], latent_dim: int,
                 lookahead: int = 0) -> None:
        super().__init__()
        self.hop = hop
        self.n_fft = 4 * hop
        self.hop_length = hop * math.prod(rates)
        self.lead = lookahead * hop
        bins = self.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self._kernel: torch.Tensor | None = None
        self.embed = CausalConv1d(2 * bins, dim, kernel_size=3)
        layers: list[nn.Module] = [CausalChannelNorm(dim)]
        layers += [CausalConvNeXtBlock(dim) for _ in range(depth)]
        for rate in rates:
            layers += [CausalConv1d(dim, dim, kernel_size=2 * rate, stride=rate), CausalConvNeXtBlock(dim)]
        layers += [CausalChannelNorm(dim), CausalConv1d(dim, latent_dim, kernel_size=1)]
        self.block = nn.Sequential(*layers)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] -> [B, 2 * (n_fft / 2 + 1), T / hop]: frame j ends at sample (j + 1) * hop + lead."""
        x = F.pad(audio[:, 0].float(), (self.n_fft - self.hop - self.lead, self.lead))
        kernel = analysis_kernel(self.n_fft, audio.device)
        return compressed_spectrum(x.unfold(-1, self.n_fft, self.hop), kernel).transpose(1, 2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return rms_normalize(self.block(self.embed(self.features(audio))))

    # ---- frame by frame -----------------------------------------------------------------------
    def _step_kernel(self) -> torch.Tensor:
        """The analysis kernel, made once per device for the frame-by-frame path."""
        device = self.window.device
        if self._kernel is None or self._kernel.device != device:
            self._kernel = analysis_kernel(self.n_fft, device)
        return self._kernel

    def initial_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor | None]:
        """The state of a stream that starts from silence, for ``batch`` items."""
        like = torch.zeros(batch, 1, 0, device=device if device is not None else self.window.device)
        return [like.new_zeros(batch, self.n_fft - self.hop), self.embed.initial_state(like),
                *initial_states(self.block, like)]

    def prefill(self, audio: torch.Tensor, state: list[torch.Tensor | None]) -> None:
        """A stream's first ``lead`` samples ``[B, lead]``, which no frame completes: they join the
        analysis history (``state`` is updated in place)."""
        history = state[0]
        assert history is not None
        state[0] = torch.cat([history, audio.float()], dim=-1)[:, audio.shape[-1]:]

    def step(self, audio: torch.Tensor, state: list[torch.Tensor | None]) -> torch.Tensor:
        """The next ``hop_length`` samples ``[B, hop_length]`` (after the ``lead`` samples given to
        :meth:`prefill`) -> the next latent frame ``[B, D, 1]``; ``state`` (from :meth:`initial_state`)
        is updated in place."""
        history = state[0]
        assert history is not None
        x = torch.cat([history, audio.float()], dim=-1)
        state[0] = x[:, x.shape[-1] - (self.n_fft - self.hop):]
        h = compressed_spectrum(x.unfold(-1, self.n_fft, self.hop), self._step_kernel())  # [B, n, 2 * bins]
        embed_state = state[1]
        assert embed_state is not None
        h, state[1] = self.embed.step(h, embed_state)
        layer_states = state[2:]
        h = step_sequential(self.block, h, layer_states)
        state[2:] = layer_states
        return rms_normalize(h.transpose(1, 2))
