"""The frame graphs of a causal model: one frame of coding with the stream's state passed in and out, so
that :mod:`codec.runtime.onnx_stepper` streams on onnxruntime without torch (roles and names in
:mod:`codec.runtime.base`).

The wrappers call the causal layers' ``step`` (the arithmetic :mod:`codec.runtime.stepper` runs on torch),
with the state as a flat tuple of tensors (the 1 x 1 convolutions' empty states left out). Batch 1
(a stream is mono), every shape fixed except the frame graphs' stage count and, for ``frame-latent``,
the frame count. A stream's initial state is zeros of the state inputs' shapes (checked here).
Traced by :func:`codec.runtime.onnx_export.export_graphs` with the file graphs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..errors import ModelError
from ..quantize.residual import ResidualQuantizer
from .base import FRAME_DECODER, FRAME_ENCODER, FRAME_LATENT, GRAPH_IO, state_names

if TYPE_CHECKING:
    from ..models.causal_decoder import CausalVocosDecoder
    from ..models.causal_encoder import CausalSTFTEncoder
    from ..models.model import Codec


def _present(states: list[torch.Tensor | None]) -> list[int]:
    """Positions of the states that exist (a 1 x 1 convolution keeps none)."""
    return [i for i, s in enumerate(states) if s is not None]


def _checked_initial(states: list[torch.Tensor | None]) -> list[torch.Tensor]:
    present = [s for s in states if s is not None]
    if any(bool(s.any()) for s in present):
        raise ModelError("a causal layer's initial state is not zeros: the frame graphs cannot start a stream")
    return present


def _filled(template: list[torch.Tensor | None], present: list[int], values: tuple[torch.Tensor, ...]
            ) -> list[torch.Tensor | None]:
    full: list[torch.Tensor | None] = [None] * len(template)
    for i, value in zip(present, values, strict=True):
        full[i] = value
    return full


class FrameEncoderGraph(nn.Module):
    """(audio ``[1, hop_length]``, *state) -> (codes ``[1, K, 1]`` int64 of every stage, *next state):
    the causal encoder's step (after the stream's first ``lead`` samples went into the analysis
    history, state 0) and the nearest-code search."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec  # the only submodule: the weights keep their names (codec.<key>)
        self.template = cast("CausalSTFTEncoder", codec.encoder).initial_state(1, torch.device("cpu"))
        self.present = _present(self.template)

    def forward(self, audio: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        full = _filled(self.template, self.present, state)
        latent = cast("CausalSTFTEncoder", self.codec.encoder).step(audio, full)
        codes = self.codec.quantizer.encode(latent)
        return (codes, *[cast(torch.Tensor, full[i]) for i in self.present])


class FrameLatentGraph(nn.Module):
    """codes ``[1, n, F]`` int64 -> the quantized latent ``[1, D, F]`` (the decode tables' rows summed)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        quantizer = self.codec.quantizer
        assert isinstance(quantizer, ResidualQuantizer)
        return quantizer.decode_by_tables(codes)


class FrameDecoderGraph(nn.Module):
    """(latent ``[1, D, 1]``, *state) -> (audio ``[1, hop_length]``: the samples the frame completes,
    ``delay`` samples before its start, *next state)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec  # the only submodule: the weights keep their names (codec.<key>)
        self.template = cast("CausalVocosDecoder", codec.decoder).initial_state(1, torch.device("cpu"))
        self.present = _present(self.template)

    def forward(self, latent: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        full = _filled(self.template, self.present, state)
        audio = cast("CausalVocosDecoder", self.codec.decoder).step(latent, full)
        return (audio, *[cast(torch.Tensor, full[i]) for i in self.present])


def trace_frame_graph(codec: Codec, role: str, opset: int) -> Any:
    """The ``role`` frame graph of the causal ``codec`` as an onnx ModelProto (weights inside, as the
    exporter names them: ``codec.<key>``)."""
    cfg = codec.config
    module: FrameEncoderGraph | FrameLatentGraph | FrameDecoderGraph
    dynamic: Any
    name_in, name_out = GRAPH_IO[role]
    if role == FRAME_LATENT:
        module = FrameLatentGraph(codec)
        example: tuple[torch.Tensor, ...] = (torch.zeros(1, min(cfg.n_codebooks, 2), 3, dtype=torch.int64),)
        dims: dict[int, Any] = {2: torch.export.Dim("frames", min=1, max=2 ** 20)}
        if cfg.n_codebooks >= 2:
            dims[1] = torch.export.Dim("stages", min=1, max=cfg.n_codebooks)
        dynamic, inputs, outputs = {"codes": dims}, [name_in], [name_out]
    else:
        if role == FRAME_ENCODER:
            module = FrameEncoderGraph(codec)
            first = torch.zeros(1, cfg.hop_length)
        elif role == FRAME_DECODER:
            module = FrameDecoderGraph(codec)
            first = torch.zeros(1, cfg.latent_dim, 1)
        else:
            raise ValueError(f"not a frame graph role: {role!r}")
        state = _checked_initial(module.template)
        example = (first, *state)
        state_in, state_out = state_names(len(state))
        dynamic, inputs, outputs = None, [name_in, *state_in], [name_out, *state_out]
    quantizer = codec.quantizer
    assert isinstance(quantizer, ResidualQuantizer)
    with quantizer.fixed_projections(), torch.no_grad():
        program = torch.onnx.export(module.eval(), example, dynamo=True, optimize=False, verbose=False,
                                    opset_version=opset, input_names=inputs, output_names=outputs,
                                    dynamic_shapes=dynamic)
    if program is None:
        raise ModelError("torch.onnx.export returned no program")
    return program.model_proto
