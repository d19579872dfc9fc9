"""Format stability: a .dvq written by format version 1 must keep decoding to the same header and codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from codec.format.bitstream import decode_stream

GOLDEN = Path(__file__).parent / "golden"


def test_v1_golden_stream_still_decodes_to_the_same_codes():
    expected = json.loads((GOLDEN / "v1_stereo.json").read_text())
    header, codes = decode_stream((GOLDEN / "v1_stereo.dvq").read_bytes())
    assert header.to_json() == expected["header"]
    assert np.array_equal(codes, np.asarray(expected["codes"]))
    assert codes.shape == (2, 3, 37) and header.gains == (1.5, 0.25)
