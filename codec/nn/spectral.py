"""The STFT and its inverse written with real-valued operations only (a convolution with a windowed
DFT basis, a transposed convolution with the inverse basis and the window's overlap-add envelope).

``torch.stft`` / ``torch.istft`` work on complex tensors, which ONNX export cannot carry (the inverse
exports as a scatter onnxruntime rejects); these functions compute the same transforms (centred
frames, reflect padding for the forward transform, a periodic Hann window, ``n_fft`` equal to the
window length) with convolutions, so the torch model and its ONNX graphs run one arithmetic. They
agree with ``torch.stft`` / ``torch.istft`` to float32 rounding (tested to 1e-5 of the signal's
scale).

The DFT basis is computed on the fly from integer indices: the angle 2 pi k n / N is reduced modulo N
in integers before it becomes a float, so it stays exact for any size, and an exported graph holds a
few index operations instead of a dense basis of N x (N + 2) constants.

Shapes: audio ``[B, T]``; spectra ``[B, bins, frames]`` with bins = n_fft / 2 + 1 and, centred,
frames = T // hop + 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _angles(n_fft: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(2 pi k n / N for k = 0..N/2 and n = 0..N-1 as ``[bins, N]``, 2 pi n / N as ``[N]``), float32,
    with k n reduced modulo N in int64 first."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.int64, device=device)
    n = torch.arange(n_fft, dtype=torch.int64, device=device)
    step = 2.0 * math.pi / n_fft
    phase = torch.remainder(k[:, None] * n[None, :], n_fft).to(torch.float32) * step
    return phase, n.to(torch.float32) * step


def hann_window(n_fft: int, device: torch.device | None = None) -> torch.Tensor:
    """The periodic Hann window ``[n_fft]`` (``torch.hann_window(n_fft)``), 0.5 - 0.5 cos(2 pi n / N)."""
    _, theta = _angles(n_fft, device)
    return 0.5 - 0.5 * torch.cos(theta)


def _basis(n_fft: int, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cos basis ``[bins, N]``, sin basis ``[bins, N]``, Hann window ``[N]``)."""
    phase, theta = _angles(n_fft, device)
    return torch.cos(phase), torch.sin(phase), 0.5 - 0.5 * torch.cos(theta)


def analysis_kernel(n_fft: int, device: torch.device | None = None) -> torch.Tensor:
    """The windowed real DFT as a matrix ``[n_fft, 2 * bins]``: a frame ``[..., n_fft]`` times it
    gives the real parts, then the imaginary parts, of the one-sided spectrum of the frame times the
    periodic Hann window (as ``torch.fft.rfft(frame * window)``)."""
    cos, sin, window = _basis(n_fft, device)
    return torch.cat([cos * window, -sin * window]).T


def synthesis_kernel(n_fft: int, device: torch.device | None = None) -> torch.Tensor:
    """The windowed inverse real DFT as a matrix ``[2 * bins, n_fft]``: a frame's real parts then
    imaginary parts (``[..., 2 * bins]``) times it give the frame's inverse real DFT times the periodic
    Hann window (as ``torch.fft.irfft(..., n=n_fft) * window``; the imaginary parts of the DC and
    Nyquist bins are ignored)."""
    cos, sin, window = _basis(n_fft, device)
    bins = n_fft // 2 + 1
    # DC and Nyquist appear once in the full spectrum, the rest twice. (Built from constants, not a
    # comparison of indices: an exported graph then folds the whole kernel into a constant.)
    once = torch.full((1, 1), 1.0 / n_fft, device=device)
    scale = torch.cat([once, torch.full((bins - 2, 1), 2.0 / n_fft, device=device), once])  # [bins, 1]
    weight = scale * window  # [bins, N]
    return torch.cat([cos * weight, -sin * weight])


def stft(audio: torch.Tensor, n_fft: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the centred STFT of ``audio`` ``[B, T]`` (periodic Hann window of
    ``n_fft``, reflect padding by n_fft / 2 on both sides: T must exceed n_fft / 2), each
    ``[B, n_fft / 2 + 1, T // hop + 1]``. Equal to ``torch.stft(audio, n_fft, hop, window=
    torch.hann_window(n_fft), center=True, pad_mode="reflect", return_complex=True)`` up to
    float32 rounding."""
    kernel = analysis_kernel(n_fft, audio.device).T[:, None, :]  # [2 * bins, 1, N]
    x = F.pad(audio[:, None, :].float(), (n_fft // 2, n_fft // 2), mode="reflect")
    spec = F.conv1d(x, kernel, stride=hop)
    bins = n_fft // 2 + 1
    return spec[:, :bins], spec[:, bins:]


def istft(real: torch.Tensor, imag: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """The inverse of :func:`stft`: one-sided spectra ``[B, n_fft / 2 + 1, N]`` -> audio ``[B, (N - 1)
    * hop]`` (inverse real DFT of each frame, periodic Hann window, overlap-add divided by the
    window's squared envelope, n_fft / 2 trimmed at the start). Equal to ``torch.istft(torch.complex(
    real, imag), n_fft, hop, window=torch.hann_window(n_fft), center=True)`` up to float32 rounding;
    like it, the imaginary parts of the DC and Nyquist bins are ignored."""
    window = hann_window(n_fft, real.device)
    kernel = synthesis_kernel(n_fft, real.device)[:, None, :]  # [2 * bins, 1, N]
    frames = real.shape[-1]
    audio = F.conv_transpose1d(torch.cat([real, imag], dim=1).float(), kernel, stride=hop)[:, 0]
    ones = torch.ones(1, 1, frames, device=real.device)
    envelope = F.conv_transpose1d(ones, window.square()[None, None, :], stride=hop)[0, 0]
    start = n_fft // 2
    length = (frames - 1) * hop
    return audio[:, start:start + length] / envelope[start:start + length]
