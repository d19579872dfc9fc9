"""The causal Vocos-style decoder: :class:`~codec.models.vocos_decoder.VocosDecoder`'s layers (same parameter
names and shapes) with left-padded convolutions, a causal upsampler and an iSTFT head whose
overlap-add completes samples frame by frame.

Timing: latent frame i gives head frames ``[i * r, (i + 1) * r)`` (r = the upsampling factor) through
convolutions that see only frames up to their own. The head places frame m's synthesis window on
samples ``[(m - lookahead) * hop, (m - lookahead) * hop + n_fft)``; a sample is final once every window
over it has arrived, so after latent frame i the samples before ``(i + 1) * hop_length - lookahead *
hop`` are final: the decoder's output trails the encoder's frame by ``lookahead`` head hops. With
lookahead = n_fft / hop - 1 (3) the newest window ends where the input seen so far ends; smaller
values let it reach past that (the model predicts that part, and later windows complete it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.causal import (
    CausalChannelNorm,
    CausalConv1d,
    CausalConvNeXtBlock,
    CausalConvTranspose1d,
    CausalWNConv1d,
    initial_states,
    step_sequential,
)
from ..nn.spectral import synthesis_kernel
from .decoder import SPECTRUM_POWER

#: The compressed magnitude's cap before decompression (as in :mod:`codec.models.decoder`'s head): |S| <=
#: 10^(1/0.3) ~ 2154 bounds the growth.
MAX_COMPRESSED = 10.0


def spectrum_parts(a: torch.Tensor, b: torch.Tensor, spectrum: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, imaginary part) of the spectrum the head predicts as ``a``, ``b`` (any equal shapes):
    ``polar`` = log-magnitude and angle, ``cartesian`` = the power-compressed spectrum |S|^0.3 S/|S|."""
    if spectrum == "polar":
        magnitude = torch.exp(a).clamp(max=1e2)
        return magnitude * torch.cos(b), magnitude * torch.sin(b)
    compressed = torch.sqrt(a.square() + b.square() + 1e-12)
    scale = compressed.clamp(max=MAX_COMPRESSED).pow(1.0 / SPECTRUM_POWER) / compressed
    return a * scale, b * scale


class CausalISTFTHead(nn.Module):
    """Features [B, C, N] -> audio [B, 1, N * hop] through an inverse STFT whose frame m lies on samples
    ``[(m - lookahead) * hop, (m - lookahead) * hop + n_fft)`` (n_fft = 4 * hop, periodic Hann window,
    overlap-add divided by the window's squared envelope; windows before the first frame count as
    silence). The projection (``proj``, weight-normalised, as :class:`codec.models.decoder.ISTFTHead`'s) sees
    frames up to its own.
    """

    window: torch.Tensor  # buffer
    envelope: torch.Tensor  # buffer

    def __init__(self, dim: int, hop: int, spectrum: str = "cartesian", kernel_size: int = 3,
                 lookahead: int = 0) -> None:
        super().__init__()
        if spectrum not in ("polar", "cartesian"):
            raise ValueError(f"spectrum must be polar or cartesian, got {spectrum!r}")
        self.hop = hop
        self.n_fft = 4 * hop
        if not 0 <= lookahead < self.n_fft // hop:
            raise ValueError(f"lookahead must be in 0..{self.n_fft // hop - 1}, got {lookahead}")
        self.spectrum = spectrum
        self.lookahead = lookahead
        self.proj = CausalWNConv1d(dim, self.n_fft + 2, kernel_size=kernel_size)
        window = torch.hann_window(self.n_fft)
        self.register_buffer("window", window, persistent=False)
        # the squared window summed over every hop-shifted copy: one value per position in a hop
        self.register_buffer("envelope", window.square().reshape(-1, hop).sum(dim=0), persistent=False)
        self._kernel: torch.Tensor | None = None

    @property
    def delay(self) -> int:
        """Samples the output trails the newest frame's hop: ``lookahead * hop``."""
        return self.lookahead * self.hop

    def _frames(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Projected features, time-major [B, N, n_fft + 2] -> windowed time frames [B, n_fft, N]
        (``kernel``: :func:`~codec.nn.spectral.synthesis_kernel`; real-valued, so the head exports to
        ONNX)."""
        a, b = x.float().chunk(2, dim=-1)
        real, imag = spectrum_parts(a, b, self.spectrum)
        return (torch.cat([real, imag], dim=-1) @ kernel).transpose(1, 2)

    def _step_kernel(self) -> torch.Tensor:
        """The synthesis kernel, made once per device for the frame-by-frame path (each frame would
        otherwise pay for ~400k sines and cosines)."""
        device = self.window.device
        if self._kernel is None or self._kernel.device != device:
            self._kernel = synthesis_kernel(self.n_fft, device)
        return self._kernel

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, n_fft, N] -> [B, (N - 1) * hop + n_fft]: frame m added at offset m * hop."""
        n = frames.shape[-1]
        length = (n - 1) * self.hop + self.n_fft
        return F.fold(frames, output_size=(1, length), kernel_size=(1, self.n_fft),
                      stride=(1, self.hop))[:, 0, 0]

    def _normalise(self, audio: torch.Tensor) -> torch.Tensor:
        """Divide [B, k * hop] overlap-added samples (starting at a hop boundary) by the envelope."""
        return (audio.reshape(audio.shape[0], -1, self.hop) / self.envelope).reshape(audio.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        kernel = synthesis_kernel(self.n_fft, x.device)
        ola = self._overlap_add(self._frames(self.proj(x).transpose(1, 2), kernel))  # index 0 = sample -delay
        return self._normalise(ola[:, self.delay: self.delay + n * self.hop])[:, None, :]

    # ---- frame by frame -----------------------------------------------------------------------
    def initial_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[projection state, overlap-add carry ``[B, n_fft - hop]``] for a batch like ``x``."""
        return [self.proj.initial_state(x), x.new_zeros(x.shape[0], self.n_fft - self.hop)]

    def step(self, x: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        """The next frames' features, time-major [B, n, C] -> the next ``n * hop`` samples [B, n * hop]
        whose windows are all in: samples ``[(m0 - lookahead) * hop, (m0 + n - lookahead) * hop)`` for
        first frame m0."""
        y, state[0] = self.proj.step(x, state[0])
        ola = self._overlap_add(self._frames(y, self._step_kernel()))
        carry = self.n_fft - self.hop
        ola[:, :carry] += state[1]
        n = x.shape[1] * self.hop
        state[1] = ola[:, n:]
        return self._normalise(ola[:, :n])

    def finish(self, state: list[torch.Tensor]) -> torch.Tensor:
        """The last ``delay`` samples [B, delay] after the final frame (their later windows never
        come), as :meth:`forward` ends."""
        return self._normalise(state[1][:, : self.delay])


class CausalVocosDecoder(nn.Module):
    """Latent [B, latent_dim, F] -> audio [B, 1, F * hop_length], causally (args as
    :class:`~codec.models.vocos_decoder.VocosDecoder`, plus ``lookahead`` in head hops). :meth:`step` decodes
    one latent frame at a time."""

    def __init__(self, latent_dim: int, dim: int, depth: int, rates: tuple[int, ...], head_hop: int,
                 spectrum: str = "cartesian", lookahead: int = 0) -> None:
        super().__init__()
        self.hop_length = head_hop * math.prod(rates)
        layers: list[nn.Module] = [CausalConv1d(latent_dim, dim, kernel_size=7), CausalChannelNorm(dim)]
        layers += [CausalConvNeXtBlock(dim) for _ in range(depth)]
        for rate in rates:
            layers += [CausalConvTranspose1d(dim, dim, kernel_size=2 * rate, stride=rate),
                       CausalConvNeXtBlock(dim)]
        layers.append(CausalChannelNorm(dim))
        self.block = nn.Sequential(*layers)
        self.head = CausalISTFTHead(dim, head_hop, spectrum, kernel_size=3, lookahead=lookahead)

    @property
    def delay(self) -> int:
        """Samples the decoder's output trails its newest latent frame's end (``lookahead * head_hop``)."""
        return self.head.delay

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(latent))

    # ---- frame by frame -----------------------------------------------------------------------
    def initial_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor | None]:
        """The state of a stream that starts from silence, for ``batch`` items."""
        like = torch.zeros(batch, 1, 0, device=device if device is not None else self.head.window.device)
        return [*initial_states(self.block, like), *self.head.initial_state(like)]

    def step(self, latent: torch.Tensor, state: list[torch.Tensor | None]) -> torch.Tensor:
        """The next latent frame(s) [B, D, n] -> ``n * hop_length`` samples [B, n * hop_length], the
        first of them ``delay`` samples before the frames' start; ``state`` is updated in place."""
        k = len(self.block)
        block_states = state[:k]
        h = step_sequential(self.block, latent.transpose(1, 2), block_states)
        head_state = [s for s in state[k:] if s is not None]
        audio = self.head.step(h, head_state)
        state[:k], state[k:] = block_states, head_state
        return audio

    def finish(self, state: list[torch.Tensor | None]) -> torch.Tensor:
        """The final ``delay`` samples [B, delay] after the last frame."""
        return self.head.finish([s for s in state[len(self.block):] if s is not None])
