"""Reading a model file (``.safetensors`` written by :func:`codec.models.weights.save_model`) without torch:
its header (tensor names, dtypes, shapes, byte offsets), its config and recorded weights hash, and
the weights hash recomputed from the stored bytes (the same sha256 :func:`codec.models.weights.weights_hash`
computes, so a stream made by either runtime names the same weights).

The safetensors layout: an 8-byte little-endian header length N, N bytes of JSON (each tensor's
``dtype``, ``shape`` and ``data_offsets`` [begin, end) relative to the data, plus ``__metadata__``),
then the data. Everything read here is checked: a file that is not a model raises ModelError.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, from_dict
from ..errors import ConfigError, ModelError

#: The model file format this version reads (``codec.models.weights`` writes it).
FORMAT, FORMAT_VERSION = "diveq-codec-model", 1
#: safetensors dtype codes -> (torch's name for the dtype, bytes per element). The hash names dtypes
#: as torch prints them, so these names are part of the hash.
DTYPES = {"F16": ("torch.float16", 2), "BF16": ("torch.bfloat16", 2), "F32": ("torch.float32", 4),
          "F64": ("torch.float64", 8), "I64": ("torch.int64", 8), "I32": ("torch.int32", 4),
          "I16": ("torch.int16", 2), "I8": ("torch.int8", 1), "U8": ("torch.uint8", 1),
          "BOOL": ("torch.bool", 1)}
_MAX_HEADER = 100 * 2 ** 20


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a safetensors file: dtype code (``F16``, ...), shape, and its bytes' absolute
    position in the file (``offset``, ``length``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    length: int


@dataclass(frozen=True)
class ModelFile:
    """A model file's header: ``tensors`` by name, the ``metadata`` strings, the file's size."""

    path: Path
    tensors: dict[str, StoredTensor]
    metadata: dict[str, str]
    size: int


def _bad(path: Path, why: str) -> ModelError:
    return ModelError(f"{path} is not a diveq-codec model ({why})")


def _tensor(path: Path, name: str, entry: Any, data_start: int, size: int) -> StoredTensor:
    """One header entry, checked: a known dtype, a shape of non-negative ints, offsets inside the
    file that hold exactly shape x element size bytes."""
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise _bad(path, f"tensor {name!r} has an unknown dtype")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _bad(path, f"tensor {name!r} has a malformed shape or offsets")
    begin, end = offsets
    count = 1
    for d in shape:
        count *= d
    if not 0 <= begin <= end or data_start + end > size or end - begin != count * DTYPES[entry["dtype"]][1]:
        raise _bad(path, f"tensor {name!r} does not fit the file")
    return StoredTensor(name, entry["dtype"], tuple(shape), data_start + begin, end - begin)


def read_model_file(path: str | Path) -> ModelFile:
    """The header of the safetensors file ``path`` (ModelError if missing or malformed)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            head = f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            if not 0 < n <= min(_MAX_HEADER, size - 8):
                raise _bad(path, "no safetensors header")
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"model path is a folder, not a .safetensors file: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "unreadable safetensors header") from None
    if not isinstance(header, dict):
        raise _bad(path, "unreadable safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "malformed metadata")
    tensors = {name: _tensor(path, name, entry, 8 + n, size) for name, entry in header.items()}
    return ModelFile(path, tensors, metadata, size)


def model_config(model: ModelFile) -> tuple[ModelConfig, str]:
    """(config, recorded weights hash) from the file's metadata; ModelError when it is not a
    diveq-codec model, was written by a newer version, or holds a config this version cannot build."""
    path, meta = model.path, model.metadata
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not a diveq-codec model (no '{FORMAT}' metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise ModelError(f"{path}: bad format_version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer diveq-codec (model format {version}, "
                         f"this version reads {FORMAT_VERSION}); upgrade diveq-codec")
    try:
        config = from_dict(ModelConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: missing or unreadable config ({exc})") from None
    except ConfigError as exc:
        raise ModelError(f"{path}: this version cannot build the model's config: {exc}") from None
    return config, meta.get("weights_sha256", "")


def timing_suffix(config: ModelConfig | None) -> bytes:
    """What the weights hash adds after the tensors for a causal ``config``: its timing (``causal``,
    ``lookahead``, ``encoder_lookahead``), so that a causal model made from an offline model's
    weights is not taken for it (streams name their model by the hash); nothing for an offline one."""
    if config is None or not config.causal:
        return b""
    suffix = f"causal|lookahead={config.lookahead}|"
    if config.encoder_lookahead:  # (absent from the hashes of models from before it existed)
        suffix += f"encoder_lookahead={config.encoder_lookahead}|"
    return suffix.encode()


def file_weights_hash(model: ModelFile, config: ModelConfig | None = None) -> str:
    """sha256 over every stored tensor's name, dtype, shape and bytes in name order, then the
    :func:`timing_suffix` of ``config``: the value :func:`codec.models.weights.weights_hash` gives
    for the same tensors and config."""
    h = hashlib.sha256()
    with open(model.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for name in sorted(model.tensors):
            t = model.tensors[name]
            h.update(f"{name}|{DTYPES[t.dtype][0]}|{t.shape!r}|".encode())
            h.update(data[t.offset: t.offset + t.length])
    h.update(timing_suffix(config))
    return h.hexdigest()


def checked_model_file(path: str | Path) -> tuple[ModelFile, ModelConfig, str]:
    """(header, config, weights hash) of a model file whose stored bytes hash to the recorded value
    (ModelError for corrupted weights, like :func:`codec.models.weights.load_model_file`)."""
    model = read_model_file(path)
    config, recorded = model_config(model)
    digest = file_weights_hash(model, config)
    if recorded and digest != recorded:
        raise ModelError(f"{model.path}: corrupted weights (sha256 {digest[:12]}... does not match the "
                         f"recorded {recorded[:12]}...)")
    return model, config, digest
