"""Bit packing of codec codes: ``bits`` bits per code, most significant bit first, no padding
between codes (the last byte is zero-padded). Vectorised with numpy for every width 1..16: 8 and 16
are plain byte views, widths whose lcm with 8 fits a uint64 go through one word per group of codes,
and 9..15 through a matrix of single bits. The ``.dvq`` container (:mod:`codec.format.bitstream`) stores
each chunk's codes this way."""

from __future__ import annotations

import math

import numpy as np

from ..errors import BitstreamError

MAX_BITS = 16  # codebook_size <= 65536


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise BitstreamError(f"bits per code must be an integer in 1..{MAX_BITS}, got {bits!r}")


def _group(bits: int) -> tuple[int, int]:
    """Codes per byte-aligned group and the group's bytes: lcm(bits, 8) bits."""
    codes = 8 // math.gcd(bits, 8)
    return codes, codes * bits // 8


def pack_codes(values: np.ndarray, bits: int) -> bytes:
    """Pack integer codes (any shape, flattened in C order) at ``bits`` bits each, MSB first.

    The last byte is padded with zero bits. Raises :class:`BitstreamError` for non-integer arrays and
    codes outside ``0 .. 2**bits - 1``. Output length: ``ceil(values.size * bits / 8)`` bytes.
    """
    _check_bits(bits)
    flat = np.asarray(values).reshape(-1)
    if flat.dtype.kind not in "iu":
        raise BitstreamError(f"codes must be integers, got dtype {flat.dtype}")
    if flat.size == 0:
        return b""
    if flat.min() < 0 or flat.max() >= 1 << bits:
        bad = flat[np.flatnonzero((flat < 0) | (flat >= 1 << bits))[0]]
        raise BitstreamError(f"code {int(bad)} is out of range 0..{(1 << bits) - 1} ({bits} bits)")
    return pack_valid_codes(flat, bits)


def pack_valid_codes(flat: np.ndarray, bits: int) -> bytes:
    """:func:`pack_codes` without the checks: integer codes ``[N]`` (N >= 1) already known to be in
    range (the bitstream writer checks them against the codebook first)."""
    if bits in (8, 16):
        return flat.astype(np.uint8 if bits == 8 else ">u2").tobytes()
    size = (flat.size * bits + 7) // 8
    per_group, group_bytes = _group(bits)
    if group_bytes > 8:  # odd bits 9..15: through a [N, bits] matrix of single bits
        big_endian = flat.astype(">u2").view(np.uint8)
        return np.packbits(np.unpackbits(big_endian).reshape(-1, 16)[:, 16 - bits:]).tobytes()
    # each group of codes -> one uint64 holding group_bytes big-endian bytes (zero codes pad the end)
    padded = np.zeros(-(-flat.size // per_group) * per_group, dtype=np.uint64)
    padded[:flat.size] = flat
    groups = padded.reshape(-1, per_group)
    words = np.zeros(len(groups), dtype=np.uint64)
    for i in range(per_group):
        words |= groups[:, i] << np.uint64(bits * (per_group - 1 - i))
    packed = words.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - group_bytes:]
    return packed.tobytes()[:size]


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` codes of ``bits`` bits from ``data`` -> int64 ``[count]``.

    ``data`` must be exactly ``ceil(count * bits / 8)`` bytes; padding bits are ignored.
    """
    _check_bits(bits)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise BitstreamError(f"code count must be an integer >= 0, got {count!r}")
    count = int(count)
    need = (count * bits + 7) // 8
    if len(data) != need:
        raise BitstreamError(f"{count} codes of {bits} bits need {need} bytes, got {len(data)}")
    if bits in (8, 16):
        return np.frombuffer(data, dtype=np.uint8 if bits == 8 else ">u2").astype(np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    per_group, group_bytes = _group(bits)
    if group_bytes > 8:
        bit_matrix = np.zeros((count, 16), dtype=np.uint8)
        bit_matrix[:, 16 - bits:] = np.unpackbits(raw, count=count * bits).reshape(count, bits)
        return np.packbits(bit_matrix).view(">u2").astype(np.int64)
    n_groups = -(-count // per_group)
    padded = np.zeros(n_groups * group_bytes, dtype=np.uint8)
    padded[:len(raw)] = raw
    words8 = np.zeros((n_groups, 8), dtype=np.uint8)
    words8[:, 8 - group_bytes:] = padded.reshape(n_groups, group_bytes)
    words = words8.view(">u8")[:, 0].astype(np.uint64)
    codes = np.empty((n_groups, per_group), dtype=np.int64)
    mask = np.uint64((1 << bits) - 1)
    for i in range(per_group):
        codes[:, i] = (words >> np.uint64(bits * (per_group - 1 - i))) & mask
    return codes.reshape(-1)[:count]


__all__ = ["MAX_BITS", "pack_codes", "pack_valid_codes", "unpack_codes"]
