"""Offline training corpus: real speech from Debian packages plus espeak-ng / flite synthesis.

:func:`build_corpus` makes ``OUT_DIR/audio/<source>/...`` (mono 16-bit wav at ``sample_rate``) and
``OUT_DIR/manifest.csv`` with the columns of :data:`MANIFEST_COLUMNS`; ``file`` is relative to the
manifest's folder. ``split`` holds out whole speakers (``valid``) per source. Packages are fetched
with ``apt-get download`` + ``dpkg -x`` into ``OUT_DIR/cache`` (no install, nothing but Debian).

Speakers: asterisk = one per voice talent (Allison records en and es); fillets = the two fish per
language, plus one group of minor voices per level and language; tuxpaint, klettres, ktuberling =
one per language; espeak = voice + variant; flite = voice. Re-running skips finished files.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import TrainingError
from .packages import PACKAGES, Job, fetch_package
from .sentences import corpus_sentences, utterance

MANIFEST_COLUMNS = ("file", "source", "language", "speaker", "duration", "licence", "split")
SILENCE_DB = -50.0  # a file whose loudest 20 ms frame is below this (dBFS) is silence-only
MIN_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """What to synthesise; each utterance joins 1-3 ``sentences`` (default: corpus_sentences()).

    espeak speakers are ``voice+variant`` (``""`` = the plain voice), ``espeak_utterances`` each,
    at random pitch/rate/word gap; flite speakers are its voices, ``flite_utterances`` each.
    """

    espeak_voices: tuple[str, ...] = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan",
                                      "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
    espeak_variants: tuple[str, ...] = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2",
                                        "f3", "f4", "f5", "klatt", "klatt2", "klatt3", "adam",
                                        "Andy", "Annie", "belinda", "benjamin", "david", "linda",
                                        "steph", "max", "paul")
    espeak_utterances: int = 6
    flite_voices: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")
    flite_utterances: int = 100
    sentences: tuple[str, ...] | None = None


# ---------------------------------------------------------------------------------------------
# Synthesised speech
# ---------------------------------------------------------------------------------------------

def _stable_rng(*key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha1("|".join(key).encode()).digest()[:8], "big"))


def _synth_jobs(spec: SynthSpec) -> list[Job]:
    sentences = spec.sentences if spec.sentences is not None else corpus_sentences()
    jobs = []
    if shutil.which("espeak-ng") is None and spec.espeak_voices:
        warnings.warn("espeak-ng not found: skipping espeak synthesis", stacklevel=2)
    elif spec.espeak_utterances > 0:
        for voice in spec.espeak_voices:
            for variant in spec.espeak_variants:
                name = f"{voice}+{variant}" if variant else voice
                rng = _stable_rng("espeak", name)
                for u in range(spec.espeak_utterances):
                    args: tuple[str, ...] = ("-p", str(rng.randint(25, 75)), "-s", str(rng.randint(125, 195)),
                            "-g", str(rng.choice((0, 0, 1, 2))))
                    jobs.append(Job("espeak", utterance(rng, sentences),
                                     f"audio/espeak/{name}/{u:04d}.wav", "espeak",
                                     voice.split("-")[0], f"espeak-{name}",
                                     "generated (espeak-ng, GPL-3.0+)", (name, *args)))
    if shutil.which("flite") is None and spec.flite_voices:
        warnings.warn("flite not found: skipping flite synthesis", stacklevel=2)
    elif spec.flite_utterances > 0:
        for voice in spec.flite_voices:
            rng = _stable_rng("flite", voice)
            for u in range(spec.flite_utterances):
                pitch = rng.randint(150, 230) if voice == "slt" else rng.randint(85, 190)
                args = ("--setf", f"duration_stretch={rng.uniform(0.8, 1.3):.2f}",
                        "--setf", f"int_f0_target_mean={pitch}")
                jobs.append(Job("flite", utterance(rng, sentences),
                                 f"audio/flite/{voice}/{u:04d}.wav", "flite", "en",
                                 f"flite-{voice}", "generated (flite, BSD-style)", (voice, *args)))
    return jobs


# ---------------------------------------------------------------------------------------------
# Conversion (runs in worker processes)
# ---------------------------------------------------------------------------------------------

def _ffmpeg_decode(args: list[str], sample_rate: int) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", *args, "-ac", "1", "-ar", str(sample_rate),
           "-f", "f32le", "pipe:1"]
    res = subprocess.run(cmd, capture_output=True, check=True)
    return np.frombuffer(res.stdout, dtype=np.float32)


def _read_any(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate``: soundfile + soxr, ffmpeg as the fallback."""
    import soundfile as sf
    import soxr

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return _ffmpeg_decode(["-i", path], sample_rate)
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.asarray(mono, dtype=np.float32)


def _synthesise(job: Job, sample_rate: int) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="diveq-synth-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        if job.kind == "espeak":
            voice, *opts = job.args
            cmd = ["espeak-ng", "-v", voice, *opts, "-w", wav, job.src]
        else:
            voice, *opts = job.args
            cmd = ["flite", "-voice", voice, *opts, "-t", job.src, "-o", wav]
        subprocess.run(cmd, capture_output=True, check=True)
        return _read_any(wav, sample_rate)


def _is_silent(audio: np.ndarray, sample_rate: int) -> bool:
    frame = max(1, sample_rate // 50)
    n = len(audio) // frame
    if n == 0:
        return True
    energy = np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    return float(10 * np.log10(energy.max() + 1e-20)) < SILENCE_DB


def _convert(job: Job, out_dir: str, sample_rate: int) -> tuple[Job, float | None, str]:
    """Make one output file; returns (job, duration or None if dropped, message)."""
    import soundfile as sf

    out = Path(out_dir) / job.out
    if out.exists():
        return job, sf.info(str(out)).duration, ""
    try:
        if job.kind == "g722":
            audio = _ffmpeg_decode(["-f", "g722", "-i", job.src], sample_rate)
        elif job.kind in ("espeak", "flite"):
            audio = _synthesise(job, sample_rate)
        else:
            audio = _read_any(job.src, sample_rate)
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return job, None, f"cannot convert {job.src[:80]}: {type(exc).__name__}"
    if len(audio) < MIN_SECONDS * sample_rate or _is_silent(audio, sample_rate):
        return job, None, ""
    pcm = np.clip(np.nan_to_num(audio), -1.0, 32767 / 32768)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), pcm, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, out)
    return job, len(pcm) / sample_rate, ""


# ---------------------------------------------------------------------------------------------
# Splits, manifest, totals
# ---------------------------------------------------------------------------------------------

def assign_splits(rows: list[dict[str, str]], valid_fraction: float = 0.05) -> None:
    """Set ``row["split"]`` in place, holding out whole speakers per source.

    Per source with >= 2 speakers, ``max(1, round(valid_fraction * n_speakers))`` speakers go to
    ``valid``, chosen in a fixed hash order among those holding at most 2 * valid_fraction of the
    source's audio (the smallest speakers if none does), so one big voice is not held out.
    """
    by_source: dict[str, dict[str, float]] = {}
    for row in rows:
        spk = by_source.setdefault(row["source"], {})
        spk[row["speaker"]] = spk.get(row["speaker"], 0.0) + float(row["duration"])
    held: set[tuple[str, str]] = set()
    for source, speakers in by_source.items():
        if len(speakers) < 2:
            continue
        total = sum(speakers.values())
        k = max(1, round(valid_fraction * len(speakers)))
        order = sorted(speakers, key=lambda s: hashlib.sha1(f"{source}|{s}".encode()).hexdigest())
        small = [s for s in order if speakers[s] <= 2 * valid_fraction * total]
        if len(small) < k:
            small += [s for s in sorted(speakers, key=lambda s: speakers[s]) if s not in small]
        held.update((source, s) for s in small[:k])
    for row in rows:
        row["split"] = "valid" if (row["source"], row["speaker"]) in held else "train"


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest.csv as dicts (raises TrainingError if it lacks the columns)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise TrainingError(f"{path}: not a corpus manifest "
                                f"(missing {', '.join(sorted(missing))})")
        return list(reader)


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def corpus_totals(rows: Iterable[dict[str, str]]) -> str:
    """A table of hours, files and speakers per source and split."""
    acc: dict[tuple[str, str], list] = {}
    for row in rows:
        entry = acc.setdefault((row["source"], row["split"]), [0.0, 0, set()])
        entry[0] += float(row["duration"])
        entry[1] += 1
        entry[2].add(row["speaker"])
    lines = [f"{'source':<12}{'split':<7}{'hours':>8}{'files':>8}{'speakers':>10}"]
    total = {"train": 0.0, "valid": 0.0}
    for (source, split), (secs, files, spk) in sorted(acc.items()):
        lines.append(f"{source:<12}{split:<7}{secs / 3600:8.2f}{files:8d}{len(spk):10d}")
        total[split] = total.get(split, 0.0) + secs
    lines.append("total       " + "  ".join(f"{s} {v / 3600:.2f} h" for s, v in total.items()))
    return "\n".join(lines)


def build_corpus(out_dir: Path, sample_rate: int = 16000, synth: bool = True, jobs: int = 2,
                 progress: bool = True, *, real: bool = True, synth_spec: SynthSpec | None = None,
                 cache_dir: Path | None = None, valid_fraction: float = 0.05) -> Path:
    """Build (or finish) the corpus in ``out_dir``; returns the path of ``manifest.csv``.

    real: fetch and convert the Debian speech packages (:data:`PACKAGES`); synth: espeak-ng and
    flite per ``synth_spec`` (default :class:`SynthSpec`). Files already converted are kept.
    Raises TrainingError when nothing could be made.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    log = (lambda msg: print(msg, flush=True)) if progress else (lambda msg: None)
    start = time.monotonic()

    todo: list[Job] = []
    if real:
        for name, lister in PACKAGES.items():
            root = fetch_package(name, cache_dir, log)
            if root is not None:
                found = lister(root)
                log(f"{name}: {len(found)} files")
                todo += found
    if synth:
        todo += _synth_jobs(synth_spec or SynthSpec())
    dropped_path = out_dir / "dropped.txt"
    dropped = set(dropped_path.read_text().split("\n")) if dropped_path.exists() else set()
    todo = [j for j in todo if j.out not in dropped]
    log(f"{len(todo)} files to make ({time.monotonic() - start:.0f} s)")

    rows: list[dict[str, str]] = []
    failures = 0
    results = _map(todo, str(out_dir), sample_rate, jobs)
    for i, (job, duration, message) in enumerate(results, 1):
        if message:
            failures += 1
            if failures <= 20:
                log(f"warning: {message}")
        if duration is None:
            dropped.add(job.out)
        else:
            rows.append({"file": job.out, "source": job.source, "language": job.language,
                         "speaker": job.speaker, "duration": f"{duration:.3f}",
                         "licence": job.licence, "split": ""})
        if i % 1000 == 0 or i == len(todo):
            log(f"{i}/{len(todo)} files ({time.monotonic() - start:.0f} s)")
    tmp = dropped_path.with_name(".dropped.txt.tmp")
    tmp.write_text("\n".join(sorted(d for d in dropped if d)))
    os.replace(tmp, dropped_path)
    if not rows:
        raise TrainingError(f"no audio could be made for the corpus in {out_dir}")
    assign_splits(rows, valid_fraction)
    manifest = out_dir / "manifest.csv"
    _write_manifest(manifest, rows)
    log(corpus_totals(rows))
    log(f"{len(rows)} files, {len(dropped)} dropped (silent/failed), {failures} failed; "
        f"built in {time.monotonic() - start:.0f} s -> {manifest}")
    return manifest


def _map(todo: list[Job], out_dir: str, sample_rate: int, jobs: int):
    if jobs <= 1:
        for job in todo:
            yield _convert(job, out_dir, sample_rate)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_convert, todo, [out_dir] * len(todo), [sample_rate] * len(todo),
                            chunksize=16)
