"""Causal layers that also run frame by frame: each output frame depends on input frames up to its own
time only, and ``step`` computes the next output frames from the next input frames and a small state,
giving what ``forward`` gives on the whole sequence.

Conventions for every layer here: ``forward(x)`` takes a whole sequence ``[B, C, T]`` that starts from
silence (zeros before it); ``initial_state(x)`` is that silence as a state for a batch like ``x``;
``step(x, state) -> (y, state)`` takes the next input frames (a multiple of the stride) and returns
their output frames and the new state. The state has a fixed size, so a stream of any length runs in
constant memory. Parameter names and shapes are those of the offline (centred) layers they replace.

``step`` is for inference (no gradients) and computes a few frames at a time, where a convolution
call costs far more than its arithmetic: it multiplies the unfolded input by the weight as a matrix
instead (the same sums, in another order: equal to ``forward`` to float rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .convnext import ConvNeXtBlock
from .layers import WNConv1d, normed_weight


def _left_context(kernel_size: int, stride: int) -> int:
    if kernel_size < stride:
        raise ValueError(f"a causal convolution needs kernel_size >= stride, got {kernel_size} < {stride}")
    return kernel_size - stride


class CausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` padded on the left by ``kernel_size - stride`` frames: ``[B, C_in, T] -> [B, C_out,
    T / stride]``, output frame t sees input frames up to ``t * stride + stride - 1``. State: the last
    ``kernel_size - stride`` input frames ``[B, C_in, kernel_size - stride]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.context = _left_context(kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.context, 0)))

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.in_channels, self.context)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = torch.cat([state, x], dim=-1)
        return _conv_step(full, self.weight, self.bias, self.stride[0], self.groups), \
            full[..., full.shape[-1] - self.context:]


def _conv_step(full: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
               groups: int) -> torch.Tensor:
    """``F.conv1d(full, weight, bias, stride, groups=groups)`` for a few frames ``full`` [B, C_in, L]
    (groups 1 or C_in): the unfolded frames times the weight."""
    k = weight.shape[-1]
    patches = full.unfold(-1, k, stride)  # [B, C_in, n, k]
    if groups == 1:
        b, c, n, _ = patches.shape
        y = F.linear(patches.transpose(1, 2).reshape(b, n, c * k), weight.reshape(weight.shape[0], -1),
                     bias).transpose(1, 2)
    elif groups == full.shape[1] == weight.shape[0]:
        y = (patches * weight).sum(dim=-1)  # weight [C, 1, k] against [B, C, n, k]
        if bias is not None:
            y = y + bias[:, None]
    else:
        return F.conv1d(full, weight, bias, stride, groups=groups)
    return y


class CausalWNConv1d(WNConv1d):
    """:class:`~codec.nn.layers.WNConv1d` (weight-normalised) padded on the left, stride 1; as
    :class:`CausalConv1d` otherwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=kernel_size)
        self.context = _left_context(kernel_size, 1)
        self._cached: tuple[tuple[int, ...], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.context, 0)))

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.in_channels, self.context)

    def _step_weight(self) -> torch.Tensor:
        """The normalised weight, computed again only when ``weight_v`` or ``weight_g`` changed."""
        v, g = self.weight_v, self.weight_g
        key = (v._version, g._version, v.data_ptr(), g.data_ptr())
        if self._cached is None or self._cached[0] != key:
            with torch.no_grad():
                self._cached = key, normed_weight(v, g).detach()
        return self._cached[1]

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = torch.cat([state, x], dim=-1)
        return _conv_step(full, self._step_weight(), self.bias, 1, 1), \
            full[..., full.shape[-1] - self.context:]


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` without padding whose output is cut to ``T * stride`` frames: input frame
    i writes output frames ``[i * stride, i * stride + kernel_size)``, so output frame t is complete once
    input frame ``t // stride`` has arrived (the causal upsampler). State: the ``kernel_size - stride``
    output frames the last input frames wrote past their own (the overlap, without the bias), added to
    the next frames' output."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.context = _left_context(kernel_size, stride)
        self.up = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[..., : x.shape[-1] * self.up]

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.out_channels, self.context)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c_in, frames = x.shape
        k = self.kernel_size[0]
        # each input frame's k output frames: [B, n, C_out, k], then overlap-added at stride ``up``
        parts = F.linear(x.transpose(1, 2), self.weight.reshape(c_in, -1).t())
        parts = parts.reshape(b, frames, self.out_channels, k).permute(0, 2, 3, 1)  # [B, C_out, k, n]
        y = F.fold(parts.reshape(b, self.out_channels * k, frames), output_size=(1, (frames - 1) * self.up + k),
                   kernel_size=(1, k), stride=(1, self.up)).reshape(b, self.out_channels, -1)
        y = torch.cat([y[..., : self.context] + state, y[..., self.context:]], dim=-1)
        n = frames * self.up
        out = y[..., :n]
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out, y[..., n:]


class CausalConvNeXtBlock(ConvNeXtBlock):
    """:class:`~codec.nn.convnext.ConvNeXtBlock` whose depthwise convolution is causal (the LayerNorm
    and the MLP work on each frame alone, so the block is causal). State: the depthwise
    convolution's last ``kernel_size - 1`` input frames."""

    def __init__(self, dim: int, kernel_size: int = 7, expansion: int = 3,
                 layer_scale: float = 0.1) -> None:
        super().__init__(dim, kernel_size, expansion, layer_scale)
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        assert isinstance(self.dwconv, CausalConv1d)
        return self.dwconv.initial_state(x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(self.dwconv, CausalConv1d)
        h, state = self.dwconv.step(x, state)
        return self.finish(x, h), state


#: The layers with a ``step``; any other layer of a causal stack works on each frame alone.
StepLayer = CausalConv1d | CausalWNConv1d | CausalConvTranspose1d | CausalConvNeXtBlock


def initial_states(layers: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor | None]:
    """Every layer's initial state for a batch like ``x`` (None for layers without state). The channel
    count of ``x`` does not matter: each layer sizes its own state."""
    return [layer.initial_state(x) if isinstance(layer, StepLayer) else None for layer in layers]


def step_sequential(layers: nn.Sequential, x: torch.Tensor,
                    states: list[torch.Tensor | None]) -> torch.Tensor:
    """Run ``layers`` on the next frames ``x`` [B, C, n], updating ``states`` (from
    :func:`initial_states`) in place; returns the output frames."""
    for i, layer in enumerate(layers):
        if isinstance(layer, StepLayer):
            state = states[i]
            assert state is not None
            x, states[i] = layer.step(x, state)
        elif isinstance(layer, nn.Conv1d) and layer.kernel_size == (1,) and layer.groups == 1:
            x = F.linear(x.transpose(1, 2), layer.weight[:, :, 0], layer.bias).transpose(1, 2)
        else:
            x = layer(x)
    return x
