"""codec.nn.spectral: the real-valued STFT / iSTFT the models (and their ONNX graphs) use computes what
torch.stft / torch.istft compute, to float32 rounding (1e-5 of the signal's scale)."""

from __future__ import annotations

import pytest
import torch

from codec.nn.spectral import hann_window, istft, stft

SIZES = [(640, 160), (320, 80), (256, 64), (64, 16)]


@pytest.mark.parametrize(("n_fft", "hop"), SIZES)
def test_stft_matches_torch_stft(n_fft: int, hop: int) -> None:
    x = 0.3 * torch.randn(3, 4000 + hop // 2)  # not a multiple of the hop
    ref = torch.stft(x, n_fft, hop, n_fft, torch.hann_window(n_fft), center=True, pad_mode="reflect",
                     return_complex=True)
    real, imag = stft(x, n_fft, hop)
    assert real.shape == imag.shape == ref.shape
    scale = float(ref.abs().max())
    assert float((real - ref.real).abs().max()) < 1e-5 * scale
    assert float((imag - ref.imag).abs().max()) < 1e-5 * scale


@pytest.mark.parametrize(("n_fft", "hop"), SIZES)
def test_istft_matches_torch_istft(n_fft: int, hop: int) -> None:
    spec = torch.randn(2, n_fft // 2 + 1, 37, dtype=torch.complex64)  # any spectrum, not only STFTs
    ref = torch.istft(spec, n_fft, hop, n_fft, torch.hann_window(n_fft), center=True)
    audio = istft(spec.real, spec.imag, n_fft, hop)
    assert audio.shape == ref.shape == (2, 36 * hop)
    assert float((audio - ref).abs().max()) < 1e-5 * float(ref.abs().max())


def test_istft_inverts_stft_and_the_window_is_torchs() -> None:
    x = 0.3 * torch.randn(2, 3200)
    back = istft(*stft(x, 640, 160), 640, 160)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)
    assert torch.equal(hann_window(640), torch.hann_window(640))


def test_large_index_products_keep_their_accuracy() -> None:
    """k * n reaches ~N^2 / 2: reduced modulo N in integers, the basis stays exact at large sizes."""
    n_fft, hop = 2048, 512
    x = torch.randn(1, 8192)
    ref = torch.stft(x, n_fft, hop, n_fft, torch.hann_window(n_fft), return_complex=True)
    real, imag = stft(x, n_fft, hop)
    scale = float(ref.abs().max())
    assert float((torch.complex(real, imag) - ref).abs().max()) < 1e-5 * scale
