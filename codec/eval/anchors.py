"""Classical codecs to compare against (anchors): Opus (opus-tools) and Codec2 (codec2 + sox).

Each anchor encodes and decodes a mono float signal through the real command-line tools, in a
temporary directory, and reports what it cost:

    out = OpusAnchor(6).run(audio, 16000)      # audio [T] float in [-1, 1]
    out.audio          # [T] float32 at the same sample rate and length
    out.n_bytes        # size of the compressed file (container and headers included)
    out.encode_s, out.decode_s   # wall-clock seconds of the tools (see each class)

The commands are those of docs ANCHORS.md, so numbers are comparable with the table there.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import AnchorError

ANCHOR_TOOLS: dict[str, tuple[str, ...]] = {
    "opus": ("opusenc", "opusdec"),
    "codec2": ("sox", "c2enc", "c2dec"),
}
OPUS_BITRATES_KBPS: tuple[float, ...] = (6.0, 8.0, 12.0)
CODEC2_MODES: tuple[str, ...] = ("3200", "2400", "1600", "1400", "1300", "1200", "700C")
_OPUSDEC_RATES = (8000, 12000, 16000, 24000, 48000)
_CODEC2_RATE = 8000
_TOOL_PACKAGES = {"opusenc": "opus-tools", "opusdec": "opus-tools", "c2enc": "codec2",
                  "c2dec": "codec2", "sox": "sox"}


class AnchorOutput(NamedTuple):
    """One encode + decode through an anchor: ``(audio, n_bytes, encode_s, decode_s)``."""

    audio: np.ndarray  # [T] float32, same sample rate and length as the input
    n_bytes: int
    encode_s: float
    decode_s: float


def missing_tools(anchor: str) -> list[str]:
    """The tools of ``anchor`` (``"opus"`` or ``"codec2"``) that are not on ``PATH``."""
    if anchor not in ANCHOR_TOOLS:
        raise ValueError(f"unknown anchor {anchor!r} (known: {', '.join(ANCHOR_TOOLS)})")
    return [tool for tool in ANCHOR_TOOLS[anchor] if shutil.which(tool) is None]


def available_anchors() -> dict[str, bool]:
    """For each anchor name, whether all of its tools are installed."""
    return {name: not missing_tools(name) for name in ANCHOR_TOOLS}


class OpusAnchor:
    """Opus through ``opusenc --bitrate B --framesize 20`` and ``opusdec --rate R``.

    encode_s times ``opusenc`` (which resamples to 48 kHz itself); decode_s times ``opusdec``
    (decoding straight to the input rate when opusdec supports it, else to 48 kHz, then soxr).
    n_bytes is the whole .opus file (Ogg pages and headers included).
    """

    name = "opus"

    def __init__(self, bitrate_kbps: float, framesize_ms: float = 20.0) -> None:
        if not 0.5 <= bitrate_kbps <= 512:
            raise ValueError(f"Opus bitrate must be in 0.5..512 kbps, got {bitrate_kbps}")
        self.kbps = float(bitrate_kbps)
        self.framesize_ms = framesize_ms

    def run(self, audio: np.ndarray, sample_rate: int) -> AnchorOutput:
        """Encode and decode ``audio [T]`` at ``sample_rate``."""
        audio = _check_audio(audio)
        _require_tools("opus")
        decode_rate = sample_rate if sample_rate in _OPUSDEC_RATES else 48000
        with tempfile.TemporaryDirectory(prefix="diveq-opus-") as tmp:
            src, bits, out = Path(tmp, "in.wav"), Path(tmp, "coded.opus"), Path(tmp, "out.wav")
            _write_wav(src, audio, sample_rate)
            encode_s = _run(["opusenc", "--quiet", "--bitrate", f"{self.kbps:g}", "--framesize",
                             f"{self.framesize_ms:g}", str(src), str(bits)])
            decode_s = _run(["opusdec", "--quiet", "--rate", str(decode_rate), str(bits), str(out)])
            n_bytes = bits.stat().st_size
            decoded = _read_wav(out, decode_rate)
        if decode_rate != sample_rate:
            decoded = _resample(decoded, decode_rate, sample_rate)
        return AnchorOutput(_fit_length(decoded, audio.shape[0]), n_bytes, encode_s, decode_s)


class Codec2Anchor:
    """Codec2 at 8 kHz: ``sox`` to 8 kHz 16-bit raw, ``c2enc MODE``, ``c2dec MODE``, ``sox`` back.

    encode_s times sox (down) + c2enc; decode_s times c2dec + sox (up). n_bytes is the .c2 file
    (codec2's small mode header included).
    """

    name = "codec2"

    def __init__(self, mode: str = "3200") -> None:
        mode = str(mode)
        if mode not in CODEC2_MODES:
            raise ValueError(f"unknown Codec2 mode {mode!r} (known: {', '.join(CODEC2_MODES)})")
        self.mode = mode
        self.kbps = float(mode.rstrip("C")) / 1000.0

    def run(self, audio: np.ndarray, sample_rate: int) -> AnchorOutput:
        """Encode and decode ``audio [T]`` at ``sample_rate``."""
        audio = _check_audio(audio)
        _require_tools("codec2")
        raw_spec = ["-t", "raw", "-r", str(_CODEC2_RATE), "-e", "signed", "-b", "16", "-c", "1"]
        with tempfile.TemporaryDirectory(prefix="diveq-codec2-") as tmp:
            src, raw_in = Path(tmp, "in.wav"), Path(tmp, "in.raw")
            bits, raw_out, out = Path(tmp, "coded.c2"), Path(tmp, "out.raw"), Path(tmp, "out.wav")
            _write_wav(src, audio, sample_rate)
            encode_s = _run(["sox", "-q", str(src), *raw_spec, str(raw_in)])
            encode_s += _run(["c2enc", self.mode, str(raw_in), str(bits)])
            decode_s = _run(["c2dec", self.mode, str(bits), str(raw_out)])
            decode_s += _run(["sox", "-q", *raw_spec, str(raw_out), "-r", str(sample_rate), "-b",
                              "16", str(out)])
            n_bytes = bits.stat().st_size
            decoded = _read_wav(out, sample_rate)
        return AnchorOutput(_fit_length(decoded, audio.shape[0]), n_bytes, encode_s, decode_s)


# ----------------------------------------------------------------------------------------- helpers


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.shape[0] == 0:
        raise ValueError(f"anchors take mono audio [T] with T > 0, got shape {audio.shape}")
    return audio


def _require_tools(anchor: str) -> None:
    missing = missing_tools(anchor)
    if missing:
        packages = sorted({_TOOL_PACKAGES.get(tool, tool) for tool in missing})
        raise AnchorError(f"{anchor} anchor needs {', '.join(missing)} on PATH "
                          f"(Debian: apt-get install {' '.join(packages)})")


def _run(command: list[str]) -> float:
    """Run a tool; return its wall-clock seconds; AnchorError with its stderr if it fails."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise AnchorError(f"cannot run {command[0]}: {exc}") from None
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        lines = (result.stderr or result.stdout or "").strip().splitlines()
        detail = lines[-1] if lines else "no output"
        raise AnchorError(f"{command[0]} failed (exit {result.returncode}): {detail}")
    return elapsed


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _read_wav(path: Path, expected_rate: int) -> np.ndarray:
    import soundfile

    if not path.is_file() or path.stat().st_size == 0:
        raise AnchorError(f"decoder wrote no audio ({path.name})")
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != expected_rate:
        raise AnchorError(f"decoder wrote {rate} Hz audio, expected {expected_rate} Hz")
    return audio.mean(axis=1)


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(audio, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad ``audio [T']`` to ``[length]`` float32."""
    audio = np.asarray(audio, dtype=np.float32)[:length]
    if audio.shape[0] < length:
        audio = np.pad(audio, (0, length - audio.shape[0]))
    return audio
