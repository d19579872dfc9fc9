"""Make the short speech clips tests/data/speech/*.flac that pin the built-in model's quality.

    .venv/bin/python scripts/make_test_speech.py [--out tests/data/speech]

Four Harvard sentences spoken by Debian's flite (three voices) and espeak-ng, trimmed of silent ends,
resampled to 16 kHz and written as 16-bit FLAC (about 40 KB each). The committed files are what the
tests use; this script only says how they were made (another engine version would differ slightly).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from make_listen_example import speak  # scripts/ is on sys.path when a script runs

CLIPS = (
    ("flite", "slt", "The birch canoe slid on the smooth planks."),
    ("flite", "rms", "Glue the sheet to the dark blue background."),
    ("flite", "awb", "It's easy to tell the depth of a well."),
    ("espeak-ng", "en-us", "These days a chicken leg is a rare dish."),
)
SAMPLE_RATE = 16000



def trim(x: np.ndarray, sr: int, threshold_db: float = -45.0) -> np.ndarray:
    frame = sr // 100
    energy = np.array([np.sqrt(np.mean(x[i:i + frame] ** 2) + 1e-12) for i in range(0, len(x), frame)])
    loud = np.nonzero(20 * np.log10(energy / energy.max()) > threshold_db)[0]
    start, end = max(0, (loud[0] - 5) * frame), min(len(x), (loud[-1] + 6) * frame)
    return x[start:end]


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf
    import soxr

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data/speech"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (engine, voice, text) in enumerate(CLIPS, start=1):
            wav = Path(tmp) / "x.wav"
            speak(engine, voice, text, wav, espeak_wpm=165)
            x, sr = sf.read(wav, dtype="float64", always_2d=True)
            x = trim(x.mean(axis=1), sr)
            if sr != SAMPLE_RATE:
                x = soxr.resample(x, sr, SAMPLE_RATE)
            x = 0.5 * x / np.abs(x).max()
            path = args.out / f"{i:02d}-{engine}-{voice}.flac"
            sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
            print(f"{path}: {len(x) / SAMPLE_RATE:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
