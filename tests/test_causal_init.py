"""Offline weights into the causal kind: each converted convolution computes what the offline one
computes from the input up to its own frame (codec/train/causal_init.py)."""

from __future__ import annotations

import torch
from torch import nn

from codec.nn.causal import CausalConv1d, CausalConvTranspose1d
from codec.train.causal_init import causal_weights


def _pair(offline: nn.Module, causal: nn.Module) -> nn.Module:
    """``causal`` loaded from ``offline`` through :func:`causal_weights` (one-module 'models')."""
    off, cau = nn.Sequential(offline), nn.Sequential(causal)
    cau.load_state_dict(causal_weights(off, cau, lookahead=3))
    return cau


def test_stride_one_convolution_keeps_its_past_taps() -> None:
    torch.manual_seed(0)
    offline = nn.Conv1d(4, 5, kernel_size=7, padding=3)
    causal = _pair(offline, CausalConv1d(4, 5, kernel_size=7))
    x = torch.randn(2, 4, 20)
    y = causal(x)
    for t in (0, 5, 19):
        past = x.clone()
        past[..., t + 1:] = 0  # what a causal layer can know at frame t
        torch.testing.assert_close(y[..., t], offline(past)[..., t])


def test_depthwise_and_strided_convolutions_keep_their_past_taps() -> None:
    torch.manual_seed(1)
    for offline, causal, stride in (
            (nn.Conv1d(6, 6, 7, padding=3, groups=6), CausalConv1d(6, 6, 7, groups=6), 1),
            (nn.Conv1d(6, 6, 4, stride=2, padding=1), CausalConv1d(6, 6, 4, stride=2), 2)):
        causal = _pair(offline, causal)
        x = torch.randn(1, 6, 16)
        y = causal(x)
        for i in range(y.shape[-1]):
            past = x.clone()
            past[..., (i + 1) * stride:] = 0
            torch.testing.assert_close(y[..., i], offline(past)[..., i])


def test_upsampler_writes_each_frame_where_the_offline_one_does() -> None:
    torch.manual_seed(2)
    offline = nn.ConvTranspose1d(3, 3, kernel_size=4, stride=2, padding=1)
    causal = _pair(offline, CausalConvTranspose1d(3, 3, kernel_size=4, stride=2))
    x = torch.randn(1, 3, 10)
    y = causal(x)
    assert y.shape == offline(x).shape
    for t in range(y.shape[-1]):
        past = x.clone()
        past[..., t // 2 + 1:] = 0  # output frame t is complete once input frame t // 2 is in
        torch.testing.assert_close(y[..., t], offline(past)[..., t])


def test_the_copy_as_is_would_move_each_kernel_into_the_past() -> None:
    # the failure the conversion avoids: the same weights, left-padded, lag the offline output by p
    torch.manual_seed(3)
    offline = nn.Conv1d(2, 2, kernel_size=7, padding=3)
    as_is = CausalConv1d(2, 2, kernel_size=7)
    as_is.load_state_dict(offline.state_dict())
    x = torch.randn(1, 2, 30)
    torch.testing.assert_close(as_is(x)[..., 3:], offline(x)[..., :-3])
    assert not torch.allclose(as_is(x), offline(x))
