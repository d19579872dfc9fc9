"""Export a model file's encoder and decoder as ONNX graphs that keep their weights in the model file.

``export_graphs(M.safetensors)`` writes ``M.encoder.onnx`` and ``M.decoder.onnx`` next to it (the graph
contract is in :mod:`codec.runtime.base`):

1. ``torch.onnx.export(..., dynamo=True)`` (opset 18) traces :class:`EncoderGraph` (audio -> the codes
   of every stage) and :class:`DecoderGraph` (codes of 1..K stages -> audio) with dynamic batch,
   length and stage count. The STFT and iSTFT are the real-valued ones the torch model runs
   (:mod:`codec.nn.spectral`), so both runtimes compute the same arithmetic. No graph optimiser runs
   here (it would fold weights into new constants and, measured, change codes on near-ties);
   onnxruntime optimises the graph when a session is made.
2. Every weight the graph uses becomes an *external* initializer that points at the tensor's bytes
   inside ``M.safetensors`` (float16 as stored, cast to float32 in the graph): the graphs add a few
   hundred kB to a model, not a second copy of its weights.
3. The graphs record the weights hash, the model file's name and the config as metadata; the
   runtime refuses a graph whose weights are not exactly the file's.
4. Both graphs are run with onnxruntime against the torch model on a short signal: exporting fails
   (ModelError) unless the codes agree on at least 99 % of frames and the decoded audio to -60 dB.

Needs torch, ``onnx`` and ``onnxscript`` (the ``[export]`` extra).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import MIN_ENCODE_FRAMES, to_dict
from ..errors import ModelError, UsageError
from ..extras import require_export_extras
from ..io.fileio import atomic_output
from ..models.model import Codec
from ..models.modelfile import ModelFile, read_model_file
from ..quantize.residual import ResidualQuantizer
from .base import (
    DECODER,
    ENCODER,
    FRAME_ROLES,
    GRAPH_FORMAT,
    GRAPH_FORMAT_VERSION,
    GRAPH_IO,
    META_CONFIG,
    META_FORMAT,
    META_HASH,
    META_ROLE,
    META_VERSION,
    META_WEIGHTS_FILE,
    graph_path,
)

OPSET = 18
#: The export check: least share of equal codes, largest decoded difference (dB below the signal).
CHECK_MIN_CODE_AGREEMENT, CHECK_MAX_DIFFERENCE_DB = 0.99, -60.0
_PREFIX = "codec."  # the wrappers hold the model as ``self.codec``: weights are named codec.<key>
_STORED = {"F16": 10, "F32": 1}  # safetensors dtype -> onnx TensorProto data type (FLOAT16, FLOAT)


class EncoderGraph(nn.Module):
    """audio ``[B, 1, T]`` (T a multiple of hop_length, at least MIN_ENCODE_FRAMES frames) -> codes
    ``[B, K, T / hop_length]`` int64 of every stage."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.codec.quantizer.encode(self.codec.encoder(audio))


class DecoderGraph(nn.Module):
    """codes ``[B, n, F]`` int64 (1 <= n <= K) -> audio ``[B, 1, F * hop_length]``: the quantized
    latent is the sum of the n stages' rows of the decode tables (one gather, any n)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        quantizer = self.codec.quantizer
        assert isinstance(quantizer, ResidualQuantizer)
        return self.codec.decoder(quantizer.decode_by_tables(codes))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs warnings about optional packages (torchvision) it does not need here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _trace(codec: Codec, role: str) -> Any:
    """The ``role`` graph as an onnx ModelProto, weights still inside (as the exporter names them)."""
    cfg = codec.config
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=MIN_ENCODE_FRAMES if role == ENCODER else 1, max=2 ** 24)
    if role == ENCODER:
        module: nn.Module = EncoderGraph(codec)
        example = torch.zeros(2, 1, 40 * cfg.hop_length)
        dynamic: dict[str, Any] = {"audio": {0: batch, 2: cfg.hop_length * frames}}
    else:
        module = DecoderGraph(codec)
        k = cfg.n_codebooks
        example = torch.zeros(2, min(k, 2), 40, dtype=torch.int64)
        dims: dict[int, Any] = {0: batch, 2: frames}
        if k >= 2:  # a model of one stage has a fixed stage count
            dims[1] = torch.export.Dim("stages", min=1, max=k)
        dynamic = {"codes": dims}
    name_in, name_out = GRAPH_IO[role]
    quantizer = codec.quantizer
    assert isinstance(quantizer, ResidualQuantizer)
    with _quiet_exporter(), quantizer.fixed_projections(), torch.no_grad():
        program = torch.onnx.export(module.eval(), (example,), dynamo=True, optimize=False, verbose=False,
                                    opset_version=OPSET, input_names=[name_in], output_names=[name_out],
                                    dynamic_shapes=dynamic)
    if program is None:  # only without dynamo
        raise ModelError("torch.onnx.export returned no program")
    return program.model_proto


def _externalize(proto: Any, model: ModelFile) -> None:
    """Point every initializer named after a stored tensor at its bytes in the model file (float16
    ones through a Cast to float32, inserted first); other initializers stay inside the graph."""
    import onnx

    graph = proto.graph
    casts = []
    kept = []
    for init in graph.initializer:
        stored = model.tensors.get(init.name.removeprefix(_PREFIX)) if init.name.startswith(_PREFIX) else None
        if stored is None:
            kept.append(init)
            continue
        if stored.dtype not in _STORED or tuple(init.dims) != stored.shape:
            raise ModelError(f"{model.path}: tensor {stored.name} ({stored.dtype} {stored.shape}) cannot "
                             f"feed the graph's {tuple(init.dims)}")
        name = init.name if stored.dtype == "F32" else stored.name
        tensor = onnx.TensorProto(name=name, data_type=_STORED[stored.dtype], dims=list(stored.shape))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", model.path.name), ("offset", str(stored.offset)),
                           ("length", str(stored.length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        kept.append(tensor)
        if name != init.name:
            casts.append(onnx.helper.make_node("Cast", [name], [init.name], to=onnx.TensorProto.FLOAT,
                                               name=f"weights/{name}"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


def _strip(proto: Any) -> None:
    """Drop what the exporter records for debugging (each node's Python stack trace, module path and
    FX node: local file names, and most of the graph's bytes)."""
    graph = proto.graph
    for item in (*graph.node, *graph.input, *graph.output, *graph.value_info):
        del item.metadata_props[:]
        item.doc_string = ""


def _describe(proto: Any, codec: Codec, role: str, weights_file: str) -> None:
    import onnx

    meta = {META_FORMAT: GRAPH_FORMAT, META_VERSION: str(GRAPH_FORMAT_VERSION), META_ROLE: role,
            META_HASH: str(codec.weights_hash), META_WEIGHTS_FILE: weights_file,
            META_CONFIG: json.dumps(to_dict(codec.config))}
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.doc_string = "diveq-codec", f"{codec.config.name}: {role}"


def check_graphs(codec: Codec, model_path: Path, seconds: float = 1.0) -> tuple[float, float]:
    """(share of equal codes, decoded difference in dB relative to the signal) between the torch
    model and its graphs on ``seconds`` of a fixed two-channel test signal, all stages."""
    from .onnx_runtime import OnnxCodec

    rate = codec.config.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t),
                      0.1 * rng.standard_normal(t.size)]).astype(np.float32)[:, None, :]
    graphs = OnnxCodec(model_path, threads=1)
    with torch.inference_mode():
        codes = codec.encode(torch.from_numpy(audio)).numpy()
        decoded = codec.decode(torch.from_numpy(codes)).numpy()
    agreement = float((graphs.encode(audio) == codes).mean())
    other = graphs.decode(codes)
    difference = float(np.sum((other - decoded) ** 2) / max(float(np.sum(decoded ** 2)), 1e-30))
    return agreement, 10 * float(np.log10(max(difference, 1e-30)))


def check_frame_graphs(codec: Codec, model_path: Path, seconds: float = 1.0) -> tuple[float, float]:
    """As :func:`check_graphs` for a causal model's frame graphs against :mod:`codec.runtime.stepper`
    on torch: a stream of ``seconds`` of the test signal's first channel, fed in 20 ms chunks."""
    from .onnx_runtime import OnnxCodec
    from .onnx_stepper import OnnxFrameDecoder, OnnxFrameEncoder
    from .stepper import FrameDecoder, FrameEncoder

    rate = codec.config.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)[None]
    graphs = OnnxCodec(model_path, threads=1)
    chunk = rate // 50
    k = codec.config.n_codebooks
    torch_enc, onnx_enc = FrameEncoder(codec, k), OnnxFrameEncoder(graphs, k)
    torch_codes = [torch_enc.encode(torch.from_numpy(audio[:, i:i + chunk])).numpy()
                   for i in range(0, audio.shape[1], chunk)] + [torch_enc.finish().numpy()]
    onnx_codes = [onnx_enc.encode(audio[:, i:i + chunk]) for i in range(0, audio.shape[1], chunk)]
    onnx_codes.append(onnx_enc.finish())
    codes, other_codes = np.concatenate(torch_codes, axis=-1), np.concatenate(onnx_codes, axis=-1)
    agreement = float((codes == other_codes).mean()) if codes.shape == other_codes.shape else 0.0
    torch_dec, onnx_dec = FrameDecoder(codec), OnnxFrameDecoder(graphs)
    decoded = torch.cat([torch_dec.decode(torch.from_numpy(codes)), torch_dec.finish()], dim=-1).numpy()
    other = np.concatenate([onnx_dec.decode(codes), onnx_dec.finish()], axis=-1)
    if other.shape != decoded.shape:
        return agreement, 0.0
    difference = float(np.sum((other - decoded) ** 2) / max(float(np.sum(decoded ** 2)), 1e-30))
    return agreement, 10 * float(np.log10(max(difference, 1e-30)))


def export_graphs(model_path: str | Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``M.encoder.onnx`` and ``M.decoder.onnx`` for the model file ``M.safetensors`` (and, for
    a causal model, its frame graphs ``M.frame-encoder.onnx``, ``M.frame-latent.onnx``,
    ``M.frame-decoder.onnx``); returns the first two's paths. Raises UsageError when a graph exists and not ``force``, ModelError for a model the
    export does not support (the STE baseline's quantizer) or graphs that fail the check,
    MissingExtrasError without ``onnx`` / ``onnxscript``."""
    require_export_extras("ONNX export")
    import onnx

    from ..models.weights import load_model_file

    path = Path(model_path)
    if path.suffix != ".safetensors":
        raise UsageError(f"the model must be a .safetensors file, got {path}")
    stored = read_model_file(path)
    codec = load_model_file(path)
    if not isinstance(codec.quantizer, ResidualQuantizer):
        raise ModelError(f"{path}: the ONNX export supports DiVeQ / SF-DiVeQ quantizers, not "
                         f"{codec.config.quantizer.kind!r}; use --runtime torch")
    roles = (ENCODER, DECODER) + (FRAME_ROLES if codec.config.causal else ())
    targets = tuple(graph_path(path, role) for role in roles)
    if not force:
        for target in targets:
            if target.exists():
                raise UsageError(f"{target} exists (use --force to overwrite)")
    for role, target in zip(roles, targets, strict=True):
        if role in FRAME_ROLES:
            from .onnx_frame_export import trace_frame_graph

            with _quiet_exporter():
                proto = trace_frame_graph(codec, role, OPSET)
        else:
            proto = _trace(codec, role)
        _externalize(proto, stored)
        _strip(proto)
        _describe(proto, codec, role, path.name)
        with atomic_output(target, force=True) as tmp:
            onnx.save(proto, str(tmp))
    checks = [("", check_graphs(codec, path))]
    if codec.config.causal:
        checks.append(("frame ", check_frame_graphs(codec, path)))
    for kind, (agreement, difference) in checks:
        if agreement < CHECK_MIN_CODE_AGREEMENT or difference > CHECK_MAX_DIFFERENCE_DB:
            for target in targets:
                target.unlink(missing_ok=True)
            raise ModelError(f"{path}: the exported {kind}graphs disagree with the torch model (codes "
                             f"equal {100 * agreement:.2f} %, decoded difference {difference:.1f} dB); "
                             "none written")
    return targets[0], targets[1]
