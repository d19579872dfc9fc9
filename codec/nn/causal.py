"""Causal layers that also run frame by frame: each output frame depends on input frames up to its own
time only, and ``step`` computes the next output frames from the next input frames and a small state,
giving what ``forward`` gives on the whole sequence.

Conventions for every layer here: ``forward(x)`` takes a whole sequence ``[B, C, T]`` that starts from
silence (zeros before it). ``initial_state(x)`` is that silence as a state for a batch like ``x``, and
``step(x, state) -> (y, state)`` takes the next input frames **time-major**, ``[B, n, C]`` (n a
multiple of the stride), and returns their output frames ``[B, n', C']`` and the new state. The state
has a fixed size, so a stream of any length runs in constant memory. Parameter names and shapes are
those of the offline (centred) layers they replace.

``step`` is for inference (no gradients) on a frame or two at a time, where each operation's call
costs more than its arithmetic: it works time-major (LayerNorm and the MLPs need no transposes),
multiplies unfolded frames by the weights as matrices instead of calling a convolution, and keeps
what it derives from the weights (a normalised weight, the ConvNeXt scale folded into its last layer)
until they change. The sums are the same, in another order: equal to ``forward`` to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .convnext import ChannelNorm, ConvNeXtBlock
from .layers import WNConv1d, normed_weight


def _left_context(kernel_size: int, stride: int) -> int:
    if kernel_size < stride:
        raise ValueError(f"a causal convolution needs kernel_size >= stride, got {kernel_size} < {stride}")
    return kernel_size - stride


class _Derived:
    """What a layer's ``step`` reads from its parameters (the parameters themselves, or tensors made
    from them), made again only when a parameter changed: in place (an optimiser, ``load_state_dict``)
    or moved (``.to``). Reading parameters through ``nn.Module`` attribute lookup costs more than the
    arithmetic of a frame, so a step reads this tuple instead."""

    def __init__(self, params: Callable[[], tuple[torch.Tensor, ...]],
                 make: Callable[[], tuple[torch.Tensor | None, ...]]) -> None:
        self._params_fn = params
        self._params: tuple[torch.Tensor, ...] | None = None
        self._make = make
        self._key: tuple[int, ...] | None = None
        self._value: tuple[torch.Tensor | None, ...] = ()

    def get(self) -> tuple[torch.Tensor | None, ...]:
        if torch.compiler.is_compiling():  # traced for export: the derived tensors as operations
            return self._make()
        if self._params is None:
            self._params = self._params_fn()
        key = tuple(v for p in self._params for v in (p._version, p.data_ptr()))
        if key != self._key:
            with torch.no_grad():
                self._value = tuple(None if t is None else t.detach() for t in self._make())
            self._key = key
        return self._value


def _conv_frames(full: torch.Tensor, weight2d: torch.Tensor, bias: torch.Tensor | None, k: int,
                 stride: int) -> torch.Tensor:
    """A convolution over a few time-major frames ``full`` [B, L, C_in] with ``weight2d`` [C_out,
    C_in * k]: the unfolded frames times the weight."""
    patches = full.unfold(1, k, stride)  # [B, n, C_in, k]
    b, n = patches.shape[:2]
    return F.linear(patches.reshape(b, n, -1), weight2d, bias)


class CausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` padded on the left by ``kernel_size - stride`` frames: ``[B, C_in, T] -> [B, C_out,
    T / stride]``, output frame t sees input frames up to ``t * stride + stride - 1``. ``groups`` is 1
    or ``in_channels`` (depthwise). State: the last ``kernel_size - stride`` input frames (None for a
    1 x 1 convolution, which needs none)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        if groups not in (1, in_channels) or (groups > 1 and out_channels != in_channels):
            raise ValueError("a causal convolution is plain (groups 1) or depthwise (groups = channels)")
        self.context = _left_context(kernel_size, stride)
        # plain: the weight as a matrix [C_out, C_in * k]; depthwise: [C, k]
        self._derived = _Derived(self._own_parameters, self._step_tensors)

    def _own_parameters(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.parameters())

    def _step_tensors(self) -> tuple[torch.Tensor | None, ...]:
        return self.weight.reshape(self.out_channels, -1), self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.context, 0)))

    def initial_state(self, x: torch.Tensor) -> torch.Tensor | None:
        return x.new_zeros(x.shape[0], self.context, self.in_channels) if self.context else None

    def step(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight, bias = self._derived.get()
        assert weight is not None
        k, s = self.kernel_size[0], self.stride[0]
        if state is None:  # 1 x 1
            return F.linear(x, weight, bias), None
        full = torch.cat([state, x], dim=1)
        if self.groups == 1:
            y = _conv_frames(full, weight, bias, k, s)
        else:  # depthwise: [B, n, C, k] times the weight [C, k]
            y = (full.unfold(1, k, s) * weight).sum(dim=-1)
            if bias is not None:
                y = y + bias
        return y, full[:, full.shape[1] - self.context:]


class CausalWNConv1d(WNConv1d):
    """:class:`~codec.nn.layers.WNConv1d` (weight-normalised) padded on the left, stride 1; as
    :class:`CausalConv1d` otherwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=kernel_size)
        self.context = _left_context(kernel_size, 1)
        self._derived = _Derived(self._own_parameters, self._step_tensors)

    def _own_parameters(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.parameters())

    def _step_tensors(self) -> tuple[torch.Tensor | None, ...]:
        return normed_weight(self.weight_v, self.weight_g).reshape(self.out_channels, -1), self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.context, 0)))

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.context, self.in_channels)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = self._derived.get()
        assert weight is not None
        full = torch.cat([state, x], dim=1)
        return _conv_frames(full, weight, bias, self.kernel_size[0], 1), full[:, full.shape[1] - self.context:]


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
        self._derived = _Derived(self._own_parameters, self._step_tensors)

    def _own_parameters(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.parameters())

    def _step_tensors(self) -> tuple[torch.Tensor | None, ...]:
        # [C_in, C_out, k] -> [k * C_out, C_in]: row j * C_out + c writes output channel c at offset j
        return self.weight.permute(2, 1, 0).reshape(-1, self.in_channels), self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[..., : x.shape[-1] * self.up]

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.context, self.out_channels)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = self._derived.get()
        assert weight is not None
        b, n, _ = x.shape
        k, c = self.kernel_size[0], self.out_channels
        parts = F.linear(x, weight).reshape(b, n, k, c)  # each input frame's k output frames
        y = torch.cat([state, x.new_zeros(b, n * self.up, c)], dim=1)
        for i in range(n):  # overlap-add (a frame or two per step)
            y[:, i * self.up:i * self.up + k] += parts[:, i]
        out = y[:, : n * self.up]
        if bias is not None:
            out = out + bias
        return out, y[:, n * self.up:]


class CausalConvNeXtBlock(ConvNeXtBlock):
    """:class:`~codec.nn.convnext.ConvNeXtBlock` whose depthwise convolution is causal (the LayerNorm
    and the MLP work on each frame alone, so the block is causal). State: the depthwise
    convolution's last ``kernel_size - 1`` input frames."""

    def __init__(self, dim: int, kernel_size: int = 7, expansion: int = 3,
                 layer_scale: float = 0.1) -> None:
        super().__init__(dim, kernel_size, expansion, layer_scale)
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.eps = float(self.norm.eps)
        self._derived = _Derived(self._own_parameters, self._step_tensors)

    def _own_parameters(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.parameters())

    def _step_tensors(self) -> tuple[torch.Tensor | None, ...]:
        """(depthwise weight [C, k], its bias, LayerNorm weight, bias, first MLP layer's weight, bias,
        last layer's weight and bias with the scale gamma folded in)."""
        dw, norm, one, two = self.dwconv, self.norm, self.pwconv1, self.pwconv2
        return (dw.weight[:, 0], dw.bias, norm.weight, norm.bias, one.weight, one.bias,
                two.weight * self.gamma[:, None], two.bias * self.gamma)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.kernel_size - 1, self.dim)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dw_weight, dw_bias, norm_weight, norm_bias, weight1, bias1, weight2, bias2 = self._derived.get()
        assert dw_weight is not None and weight1 is not None and weight2 is not None
        full = torch.cat([state, x], dim=1)
        h = (full.unfold(1, self.kernel_size, 1) * dw_weight).sum(dim=-1)
        if dw_bias is not None:
            h = h + dw_bias
        h = F.layer_norm(h, (self.dim,), norm_weight, norm_bias, self.eps)
        h = F.linear(F.gelu(F.linear(h, weight1, bias1)), weight2, bias2)
        return x + h, full[:, full.shape[1] - self.kernel_size + 1:]


class CausalChannelNorm(ChannelNorm):
    """:class:`~codec.nn.convnext.ChannelNorm` with a ``step`` (time-major frames, no state)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.dim = dim
        self.eps = float(self.norm.eps)
        self._derived = _Derived(self._own_parameters, self._step_tensors)

    def _own_parameters(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.parameters())

    def _step_tensors(self) -> tuple[torch.Tensor | None, ...]:
        return self.norm.weight, self.norm.bias

    def initial_state(self, x: torch.Tensor) -> None:
        return None

    def step(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        weight, bias = self._derived.get()
        return F.layer_norm(x, (self.dim,), weight, bias, self.eps), None


#: The layers of a causal stack: each has ``initial_state`` and ``step``.
StepLayer = CausalConv1d | CausalWNConv1d | CausalConvTranspose1d | CausalConvNeXtBlock | CausalChannelNorm


def initial_states(layers: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor | None]:
    """Every layer's initial state for a batch like ``x`` (None for layers without state). The channel
    count of ``x`` does not matter: each layer sizes its own state."""
    states = []
    for layer in layers:
        if not isinstance(layer, StepLayer):
            raise TypeError(f"{type(layer).__name__} cannot run frame by frame")
        states.append(layer.initial_state(x))
    return states


def step_sequential(layers: nn.Sequential, x: torch.Tensor,
                    states: list[torch.Tensor | None]) -> torch.Tensor:
    """Run ``layers`` (each a :data:`StepLayer`) on the next time-major frames ``x`` [B, n, C],
    updating ``states`` (from :func:`initial_states`) in place; returns the output frames [B, n', C']."""
    for i, layer in enumerate(layers):
        x, states[i] = cast(StepLayer, layer).step(x, states[i])  # type: ignore[arg-type]
    return x
