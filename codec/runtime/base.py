"""The interface between the windowed coding (:mod:`codec.runtime.streaming`) and whatever runs the model, and
the contract between the ONNX exporter and the onnxruntime runtime (file names, graph inputs and
outputs, metadata). No torch, no onnxruntime here.

A runtime codes one window at a time, numpy in and numpy out (C channels are the batch):

- ``encode_window(audio [C, T] float32, n) -> codes [C, n, ceil(T / hop_length)] int64``
- ``decode_window(codes [C, n, F] int64) -> audio [C, F * hop_length] float32``

Graphs: a model file ``M.safetensors`` has its graphs in ``M.encoder.onnx`` and ``M.decoder.onnx``
next to it. Their weights are not copied: each weight is an external initializer pointing at the
tensor's bytes inside ``M.safetensors`` (as stored, float16 or float32, cast in the graph), and the
graphs record the weights hash they were made for, so a graph never runs with other weights.

- encoder graph: input ``audio`` float32 ``[B, 1, T]``, T a multiple of hop_length and at least
  :data:`codec.config.MIN_ENCODE_FRAMES` frames (shorter audio is zero-padded to them first); output
  ``codes`` int64 ``[B, K, T / hop_length]``, all K stages (a caller that wants n stages keeps the
  first n: the stages are greedy, so they are the same codes).
- decoder graph: input ``codes`` int64 ``[B, n, F]``, 1 <= n <= K; output ``audio`` float32
  ``[B, 1, F * hop_length]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import ModelConfig
from ..errors import ModelError

#: What ``--runtime`` accepts: ``auto`` is onnx on the CPU when the model has graphs, else torch.
RUNTIMES = ("auto", "onnx", "torch")
#: Graph roles, their (first) input and output names. A causal model also has frame graphs, which
#: code one frame at a time with its state passed in (``state_0`` ...) and out (``next_state_0`` ...):
#: audio ``[1, hop_length]`` -> codes ``[1, K, 1]`` of every stage (``frame-encoder``), codes ``[1, n,
#: F]`` -> quantized latent ``[1, D, F]`` (``frame-latent``), latent ``[1, D, 1]`` -> audio ``[1,
#: hop_length]`` (``frame-decoder``); :mod:`codec.runtime.onnx_stepper` runs them.
ENCODER, DECODER = "encoder", "decoder"
FRAME_ENCODER, FRAME_LATENT, FRAME_DECODER = "frame-encoder", "frame-latent", "frame-decoder"
FRAME_ROLES = (FRAME_ENCODER, FRAME_LATENT, FRAME_DECODER)
GRAPH_IO = {ENCODER: ("audio", "codes"), DECODER: ("codes", "audio"), FRAME_ENCODER: ("audio", "codes"),
            FRAME_LATENT: ("codes", "latent"), FRAME_DECODER: ("latent", "audio")}
STATE_IN, STATE_OUT = "state_", "next_state_"
#: Metadata keys every graph carries, and the graph format this version reads and writes.
GRAPH_FORMAT, GRAPH_FORMAT_VERSION = "diveq-codec-graph", 1
META_FORMAT, META_VERSION, META_ROLE = "diveq.format", "diveq.format_version", "diveq.role"
META_HASH, META_CONFIG, META_WEIGHTS_FILE = "diveq.weights_sha256", "diveq.config", "diveq.weights_file"


def graph_path(model_path: str | Path, role: str) -> Path:
    """Where the ``role`` graph (``encoder`` or ``decoder``) of the model file ``model_path`` lives:
    ``M.encoder.onnx`` / ``M.decoder.onnx`` next to ``M.safetensors``."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.{role}.onnx")


def check_causal(model: Any) -> None:
    """ModelError unless ``model`` (a Codec or a runtime) is a causal model (the only kind that codes
    frame by frame)."""
    config = model.config
    if not getattr(config, "causal", False):
        raise ModelError(f"model {config.name!r} is an offline model, which codes whole signals: "
                         "coding a stream needs a causal model (model.causal = true)")


def state_names(count: int) -> tuple[list[str], list[str]]:
    """The names of a frame graph's ``count`` state inputs and the outputs that replace them."""
    return [f"{STATE_IN}{i}" for i in range(count)], [f"{STATE_OUT}{i}" for i in range(count)]


def has_frame_graphs(model_path: str | Path) -> bool:
    """Whether the frame graphs of a (causal) model file exist."""
    return all(graph_path(model_path, role).is_file() for role in FRAME_ROLES)


def has_graphs(model_path: str | Path) -> bool:
    """Whether both graphs of the model file exist (whether they fit its weights is checked when a
    runtime opens them)."""
    return all(graph_path(model_path, role).is_file() for role in (ENCODER, DECODER))


class CodecRuntime(Protocol):
    """A model ready to code windows: its config, its weights hash (streams record it), and the two
    window operations (shapes in the module docstring). ``runtime`` is ``onnx`` or ``torch``."""

    config: ModelConfig
    weights_hash: str | None
    runtime: str

    def encode_window(self, audio: np.ndarray, n_codebooks: int) -> np.ndarray: ...

    def decode_window(self, codes: np.ndarray) -> np.ndarray: ...
