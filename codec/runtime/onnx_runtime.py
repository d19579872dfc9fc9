"""The onnxruntime runtime: a model file's ONNX graphs (:mod:`codec.runtime.base` describes them) run on
the CPU with numpy arrays in and out; no torch.

:class:`OnnxCodec` offers what the coding API uses of a :class:`codec.models.model.Codec` (``config``,
``weights_hash``, ``encode``, ``decode``, with numpy arrays) plus the window interface. The model
file is read and its weights hash checked on construction; each graph's inference session is made
when it is first needed (``encode`` never pays for the decoder's), and refused unless the graph was
made for exactly this file's weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MIN_ENCODE_FRAMES, ModelConfig, from_dict
from ..errors import ConfigError, ModelError, UsageError
from ..models.modelfile import checked_model_file
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
    state_names,
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class OnnxCodec:
    """The model file ``path`` run by onnxruntime from its graphs ``M.encoder.onnx`` / ``M.decoder.onnx``.

    Args:
        path: the ``.safetensors`` model file (its graphs next to it).
        threads: onnxruntime's intra-op threads per session (None: onnxruntime's default, one per
            physical core).
    Raises ModelError for a missing, corrupted or unreadable model file or graph, or a graph made
    for other weights (when the graph is first used).
    """

    runtime = "onnx"
    training = False

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        _, self.config, digest = checked_model_file(self.path)
        self.weights_hash: str | None = digest
        self.threads = threads
        for role in (ENCODER, DECODER):
            if not graph_path(self.path, role).is_file():
                raise ModelError(f"{self.path} has no ONNX {role} graph ({graph_path(self.path, role).name}): "
                                 f"make the graphs with: diveq-codec export-onnx {self.path}")
        self._sessions: dict[str, Any] = {}

    # ---- what a Codec offers --------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def n_codebooks(self) -> int:
        return self.config.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def n_frames(self, n_samples: int) -> int:
        """Frames that code ``n_samples`` samples (ceil(n_samples / hop_length))."""
        return self.config.n_frames(n_samples)

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Nominal bits per second with ``n_codebooks`` stages."""
        return self.config.bitrate(n_codebooks)

    def eval(self) -> OnnxCodec:
        """Nothing to switch (a graph is always in eval mode); returns self, as ``nn.Module.eval``."""
        return self

    def __repr__(self) -> str:
        return f"OnnxCodec({str(self.path)!r}, name={self.config.name!r}, weights={str(self.weights_hash)[:12]})"

    # ---- sessions -------------------------------------------------------------------------------
    def session(self, role: str) -> Any:
        """The inference session of the ``role`` graph, made on first use and checked against the
        model file (format, role, weights hash, weights file name, config); ModelError when the
        graph is missing or does not fit."""
        if role not in (ENCODER, DECODER) and not graph_path(self.path, role).is_file():
            raise ModelError(f"{self.path} has no ONNX {role} graph ({graph_path(self.path, role).name}): "
                             f"make the graphs with: diveq-codec export-onnx {self.path} --force")
        return self._session(role)

    def _session(self, role: str) -> Any:
        """:meth:`session`, for the two graphs checked on construction."""
        session = self._sessions.get(role)
        if session is not None:
            return session
        import onnxruntime as ort

        graph = graph_path(self.path, role)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 0 if self.threads is None else int(self.threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # No graph optimisation for the file graphs: measured on the built-in model, it costs ~80 ms
        # at session start (constant folding, fusions) and gains ~7 % on long inputs; short messages
        # matter more. The frame graphs run once per 20 ms frame for as long as a stream lasts, where
        # the fusions pay (scripts/bench_realtime.py cpu --runtime onnx).
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if role in FRAME_ROLES
                                            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting threads
        try:
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable graphs or data
            raise ModelError(f"{graph}: onnxruntime cannot load it ({_first_line(exc)}); remake the graphs "
                             f"with: diveq-codec export-onnx {self.path}") from None
        self._check_graph(graph, role, session)
        self._sessions[role] = session
        return session

    def _check_graph(self, graph: Path, role: str, session: Any) -> None:
        meta = session.get_modelmeta().custom_metadata_map
        remake = f"remake the graphs with: diveq-codec export-onnx {self.path}"
        if meta.get(META_FORMAT) != GRAPH_FORMAT:
            raise ModelError(f"{graph} is not a diveq-codec graph (no '{GRAPH_FORMAT}' metadata)")
        try:
            version = int(meta.get(META_VERSION, "0"))
        except ValueError:
            raise ModelError(f"{graph}: bad graph format version {meta.get(META_VERSION)!r}") from None
        if version > GRAPH_FORMAT_VERSION:
            raise ModelError(f"{graph} was written by a newer diveq-codec (graph format {version}, this "
                             f"version reads {GRAPH_FORMAT_VERSION}); upgrade diveq-codec")
        if meta.get(META_ROLE) != role:
            raise ModelError(f"{graph} is the {meta.get(META_ROLE)!r} graph, not the {role}; {remake}")
        if meta.get(META_HASH) != self.weights_hash or meta.get(META_WEIGHTS_FILE) != self.path.name:
            raise ModelError(f"{graph} was made for other weights ({meta.get(META_WEIGHTS_FILE)}, "
                             f"{str(meta.get(META_HASH))[:12]}), not for {self.path.name} "
                             f"({str(self.weights_hash)[:12]}); {remake}")
        try:
            config = from_dict(ModelConfig, json.loads(meta.get(META_CONFIG, "")))
        except (json.JSONDecodeError, ConfigError):
            config = None
        names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        state_in, state_out = state_names(len(names[0]) - 1) if role in FRAME_ROLES else ([], [])
        if config != self.config or names != ([GRAPH_IO[role][0], *state_in], [GRAPH_IO[role][1], *state_out]):
            raise ModelError(f"{graph} does not fit {self.path.name} (config or inputs differ); {remake}")

    def _run(self, role: str, value: np.ndarray) -> np.ndarray:
        session = self._session(role)
        name_in, name_out = GRAPH_IO[role]
        try:
            (out,) = session.run([name_out], {name_in: value})
        except Exception as exc:  # a graph that loads but cannot run these shapes
            raise ModelError(f"{graph_path(self.path, role)}: onnxruntime failed ({_first_line(exc)})") from None
        return np.asarray(out)

    # ---- coding -------------------------------------------------------------------------------
    def _stages(self, n_codebooks: int | None) -> int:
        n = self.n_codebooks if n_codebooks is None else n_codebooks
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= self.n_codebooks:
            raise UsageError(f"n_codebooks must be an integer in 1..{self.n_codebooks}, got {n!r}")
        return int(n)

    def encode(self, audio: np.ndarray, n_codebooks: int | None = None) -> np.ndarray:
        """[B, 1, T] float32 audio -> [B, n, ceil(T / hop_length)] int64 codes (zero-padded on the right
        to whole frames, and to at least MIN_ENCODE_FRAMES, as :meth:`codec.models.model.Codec.encode`)."""
        n = self._stages(n_codebooks)
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != 1:
            raise UsageError(f"audio must be [B, 1, T], got {tuple(x.shape)}")
        frames = self.n_frames(x.shape[-1])
        padded = max(frames, MIN_ENCODE_FRAMES) * self.hop_length
        x = np.pad(x, ((0, 0), (0, 0), (0, padded - x.shape[-1])))
        codes = self._run(ENCODER, np.ascontiguousarray(x))
        return np.ascontiguousarray(codes[:, :n, :frames], dtype=np.int64)

    def decode(self, codes: np.ndarray, length: int | None = None) -> np.ndarray:
        """[B, n, F] int64 codes -> [B, 1, F * hop_length] float32 audio, or its first ``length``
        samples. Codes must be in 0..codebook_size - 1 (the API range-checks streams first)."""
        c = np.asarray(codes)
        if c.ndim != 3 or not 1 <= c.shape[1] <= self.n_codebooks:
            raise UsageError(f"codes must be [B, n, F] with n in 1..{self.n_codebooks}, got {tuple(c.shape)}")
        if c.size and (c.min() < 0 or c.max() >= self.codebook_size):
            raise UsageError(f"codes must be in 0..{self.codebook_size - 1}")
        if c.shape[-1] == 0 or c.shape[0] == 0:
            return np.zeros((c.shape[0], 1, c.shape[-1] * self.hop_length), dtype=np.float32)
        audio = self._run(DECODER, np.ascontiguousarray(c, dtype=np.int64))
        return audio if length is None else audio[..., :length]

    # ---- the window interface (codec.runtime.base) ------------------------------------------------
    def encode_window(self, audio: np.ndarray, n_codebooks: int) -> np.ndarray:
        """audio ``[C, T]`` float32 -> codes ``[C, n_codebooks, ceil(T / hop_length)]`` int64."""
        return self.encode(np.asarray(audio, dtype=np.float32)[:, None, :], n_codebooks)

    def decode_window(self, codes: np.ndarray) -> np.ndarray:
        """codes ``[C, n, F]`` int64 -> audio ``[C, F * hop_length]`` float32."""
        return self.decode(codes)[:, 0]
