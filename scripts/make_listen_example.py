"""Regenerate docs/listen-example/ (a listening page made by the built-in model) and its screenshot.

    .venv/bin/python scripts/make_listen_example.py [--model M.safetensors] [--out docs/listen-example]

Speaks a few short sentences with the Debian TTS engines the project already installs (flite and
espeak-ng; several voices), trims their silent ends, and runs the real command on them:
``diveq-codec eval SPEECH --bitrate 1.5,6 --against opus,codec2 --listen 2 --out OUT --force``.
Then it opens OUT/index.html in headless Debian Chromium and saves its first clip as
OUT.png (docs/listen-example.png, shown in the README). Re-run it whenever the built-in model changes.
The page stays small (about 0.5 MB): six clips of about a second, the worst and the best of
them on the page, two diveq bitrates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

#: (engine, voice, text): Harvard-sentence fragments, about a second each once trimmed.
SPEECH = (
    ("flite", "slt", "Glue the sheet to it."),
    ("flite", "rms", "Help the woman up."),
    ("flite", "awb", "The juice of lemons."),
    ("flite", "kal16", "Rice is often served."),
    ("espeak-ng", "en-us", "A pot of tea helps."),
    ("espeak-ng", "en+f3", "Open the crate."),
)
#: The speech is made in this folder of the repository (so results.json names its files by short,
#: stable paths) and deleted afterwards.
SPEECH_FOLDER = "listen-example-speech"
#: Samples quieter than this (dB below the clip's peak) are trimmed from both ends ...
TRIM_DB = 40.0
#: ... keeping this much (seconds) before the first and after the last loud sample.
MARGIN_S = 0.05


def speak(engine: str, voice: str, text: str, path: Path, espeak_wpm: int = 180) -> None:
    """Synthesise ``text`` to the wav file ``path`` with flite or espeak-ng (at ``espeak_wpm`` words/min)."""
    if engine == "flite":
        command = ["flite", "-voice", voice, "-t", text, "-o", str(path)]
    else:
        command = ["espeak-ng", "-v", voice, "-s", str(espeak_wpm), "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True)


def trim(path: Path) -> float:
    """Cut the quiet ends of the wav file ``path`` in place; returns the new length in seconds."""
    audio, rate = soundfile.read(str(path), dtype="float32")
    loud = np.flatnonzero(np.abs(audio) >= np.abs(audio).max() * 10 ** (-TRIM_DB / 20))
    margin = int(MARGIN_S * rate)
    audio = audio[max(0, loud[0] - margin): loud[-1] + margin + 1]
    soundfile.write(str(path), audio, rate, subtype="PCM_16")
    return audio.shape[0] / rate


def screenshot(page: Path, png: Path, width: int = 960) -> None:
    """The "Listen" part of ``page`` down to the end of its first clip, ``width`` CSS pixels wide,
    in headless Chromium, saved as a 128-colour PNG (small enough for the repository)."""
    from PIL import Image

    from browser import chromium_context

    with chromium_context(width=width, height=900) as context:
        tab = context.new_page()
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.wait_for_function("[...document.querySelectorAll('audio')].every("
                              "a => a.readyState >= 1)", timeout=15000)
        top = tab.locator("h2", has_text="Listen").bounding_box()
        clip = tab.locator("section.clip").first.bounding_box()
        assert top is not None and clip is not None, "the page has no clip to show"
        raw = png.with_suffix(".raw.png")
        tab.screenshot(path=str(raw), full_page=True, clip={
            "x": 0, "y": top["y"] - 8, "width": width,
            "height": clip["y"] + clip["height"] - top["y"] + 16})
    Image.open(raw).convert("RGB").quantize(128).save(png, optimize=True)
    raw.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "listen-example")
    parser.add_argument("--model", default=None, help="model file (default: the built-in model)")
    args = parser.parse_args()
    out = Path(os.path.relpath(args.out.resolve(), ROOT))  # relative paths in results.json

    speech = ROOT / SPEECH_FOLDER
    speech.mkdir()  # fails if a previous run left it: remove it by hand
    try:
        for number, (engine, voice, text) in enumerate(SPEECH, start=1):
            path = speech / f"{number}-{engine}-{voice.replace('+', '-')}.wav"
            speak(engine, voice, text, path)
            print(f"{path.name}: {trim(path):.2f} s  {text}")
        command = [sys.executable, "-m", "cli.main", "eval", SPEECH_FOLDER, "--bitrate", "1.5,6",
                   "--against", "opus,codec2", "--listen", "2", "--out", str(out), "--force"]
        if args.model:
            command += ["--model", args.model]
        subprocess.run(command, check=True, cwd=ROOT)
    finally:
        shutil.rmtree(speech, ignore_errors=True)
    out = ROOT / out
    png = out.with_suffix(".png")
    screenshot(out / "index.html", png)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 1024:.0f} KB; screenshot {png} ({png.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
