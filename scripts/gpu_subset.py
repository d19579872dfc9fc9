"""Build a compact copy of the training corpus that fits in a device call's carry (64 MiB in all).

    .venv/bin/python scripts/gpu_subset.py data/gpu_subset --max-mb 40 [--manifest data/corpus/manifest.csv]
        [--recipe recipes/dac-layout/speech16k-cpu.toml] [--seed 0] [--force]

Writes ``OUT_DIR/<corpus path>.flac`` (``audio/<source>/.../<name>.flac``) (mono FLAC, 16-bit, at the recipe's sample rate,
lossless when the corpus file already is 16-bit at that rate) and ``OUT_DIR/manifest.csv`` in the
corpus format (``codec.data.corpus.MANIFEST_COLUMNS``; ``file`` relative to ``OUT_DIR``), so a recipe
can name ``OUT_DIR/manifest.csv`` in ``data.sources``.

valid split: exactly the clips ``ValidationSet`` picks from the full corpus for the recipe
(``data.validation_items`` files, round-robin across held-out speakers), under the same relative
paths and cut to their first ``data.validation_seconds`` (all that ``ValidationSet`` reads), so
validation scores of a run on the subset equal those of a run on the full corpus.

train split: random files, balanced by duration: the next file always comes from the source with
the least audio chosen so far, and within it from the speaker with the least (each speaker's files
in a seeded random order). Stops at the first file that would take the folder (audio + manifest)
past ``--max-mb`` MiB. Prints hours, files and MiB per source and split.

Every file is written atomically (temp file + rename); ``manifest.csv`` last. An existing subset
(``OUT_DIR/manifest.csv``) is only replaced with ``--force``, which first deletes the files that
manifest lists (and the folders left empty).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections.abc import Generator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_RESERVE = 256 * 1024  # bytes kept free for manifest.csv within --max-mb


def _encode_flac(src: Path, dst: Path, sample_rate: int,
                 max_seconds: float | None = None) -> tuple[int, float]:
    """Write ``src`` as mono 16-bit FLAC at ``sample_rate`` to ``dst`` (atomically).

    Returns (bytes written, duration in seconds). A 16-bit file already at ``sample_rate`` with one
    channel is copied sample for sample (int16 in, int16 out). ``max_seconds``: keep only the first
    ``int(max_seconds * sample_rate)`` samples.
    """
    import numpy as np
    import soundfile as sf

    from codec.io.audio import resample

    info = sf.info(str(src))
    if info.channels == 1 and info.samplerate == sample_rate and info.subtype == "PCM_16":
        data, _ = sf.read(str(src), dtype="int16")  # [T]
    else:
        x, rate = sf.read(str(src), dtype="float32", always_2d=True)  # [T, C]
        mono = x.mean(axis=1)
        if rate != sample_rate:
            mono = resample(mono, rate, sample_rate)
        data = np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)
    if max_seconds is not None:
        data = data[: int(max_seconds * sample_rate)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        sf.write(tmp, data, sample_rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst.stat().st_size, len(data) / sample_rate


def _remove_subset(out_dir: Path, rows: list[dict[str, str]]) -> None:
    """Delete the files of an earlier subset's manifest rows, then the folders they leave empty."""
    folders = set()
    for row in rows:
        path = out_dir / row["file"]
        path.unlink(missing_ok=True)
        folders.update(p for p in path.parents if out_dir in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _flac_name(rel: str) -> str:
    return str(Path(rel).with_suffix(".flac"))


def _validation_files(manifest: Path, recipe_path: Path) -> list[str]:
    """Manifest ``file`` values of the clips ``ValidationSet`` picks for ``recipe_path``."""
    from codec.data.dataset import ValidationSet
    from codec.train.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    clips = ValidationSet([manifest], sample_rate=recipe.model.sample_rate,
                          seconds=recipe.data.validation_seconds,
                          max_files=recipe.data.validation_items, split="valid")
    base = manifest.resolve().parent
    return [str(Path(name).resolve().relative_to(base)) for name in clips.names]


def _balanced_order(rows: list[dict[str, str]], seed: int
                    ) -> Generator[dict[str, str], float | None, None]:
    """Yield train rows, always from the least-filled source, then its least-filled speaker.

    The caller reports back the duration it kept through ``send`` (0.0 for a skipped file).
    """
    rng = random.Random(seed)
    queues: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        queues.setdefault(row["source"], {}).setdefault(row["speaker"], []).append(row)
    for speakers in queues.values():
        for files in speakers.values():
            files.sort(key=lambda r: r["file"])
            rng.shuffle(files)
    by_source = {s: 0.0 for s in queues}
    by_speaker = {(s, k): 0.0 for s, speakers in queues.items() for k in speakers}
    while queues:
        source = min(queues, key=lambda s: (by_source[s], s))
        speakers = queues[source]
        speaker = min(speakers, key=lambda k: (by_speaker[(source, k)], k))
        row = speakers[speaker].pop()
        if not speakers[speaker]:
            del speakers[speaker]
        if not speakers:
            del queues[source]
        kept = yield row
        by_source[source] += kept or 0.0
        by_speaker[(source, speaker)] += kept or 0.0


def build_subset(out_dir: Path, manifest: Path, recipe: Path, max_mb: float, seed: int,
                 force: bool) -> list[dict[str, str]]:
    """Write the subset (see the module docstring); returns its manifest rows."""
    from codec.data.corpus import MANIFEST_COLUMNS, read_manifest
    from codec.errors import UsageError
    from codec.train.recipe import load_recipe

    if max_mb <= 0:
        raise UsageError(f"--max-mb must be > 0, got {max_mb}")
    out_manifest = out_dir / "manifest.csv"
    if out_manifest.exists():
        if not force:
            raise UsageError(f"{out_manifest} exists (use --force to rebuild the subset)")
        _remove_subset(out_dir, read_manifest(out_manifest))
        out_manifest.unlink()
    resolved = load_recipe(recipe)
    sample_rate = resolved.model.sample_rate
    rows = read_manifest(manifest)
    budget = int(max_mb * 2**20) - MANIFEST_RESERVE
    used = 0
    kept: list[dict[str, str]] = []

    def add(row: dict[str, str], max_seconds: float | None = None) -> float:
        nonlocal used
        dst = out_dir / _flac_name(row["file"])
        size, seconds = _encode_flac(manifest.parent / row["file"], dst, sample_rate, max_seconds)
        if used + size > budget:
            dst.unlink()
            return -1.0
        used += size
        new = {key: row[key] for key in MANIFEST_COLUMNS}
        new["file"] = _flac_name(row["file"])
        new["duration"] = f"{seconds:.3f}"
        kept.append(new)
        return seconds

    by_file = {row["file"]: row for row in rows}
    for name in _validation_files(manifest, recipe):
        if add(by_file[name], resolved.data.validation_seconds) < 0:
            raise UsageError(f"--max-mb {max_mb} does not even hold the validation clips")
    order = _balanced_order([r for r in rows if r["split"] == "train"], seed)
    kept_seconds: float | None = None
    while True:
        try:
            row = order.send(kept_seconds) if kept_seconds is not None else next(order)
        except StopIteration:
            break
        kept_seconds = add(row)
        if kept_seconds < 0:
            break
    _write_csv(out_manifest, kept, MANIFEST_COLUMNS)
    return kept


def _write_csv(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header, atomically."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary(rows: Sequence[dict[str, str]], out_dir: Path) -> str:
    """Hours, files, speakers and MiB per source and split, and the folder's total size."""
    acc: dict[tuple[str, str], list] = {}
    for row in rows:
        entry = acc.setdefault((row["source"], row["split"]), [0.0, 0, set(), 0])
        entry[0] += float(row["duration"])
        entry[1] += 1
        entry[2].add(row["speaker"])
        entry[3] += (out_dir / row["file"]).stat().st_size
    lines = [f"{'source':<12}{'split':<7}{'hours':>8}{'files':>8}{'speakers':>10}{'MiB':>8}"]
    for (source, split), (secs, files, speakers, size) in sorted(acc.items()):
        lines.append(f"{source:<12}{split:<7}{secs / 3600:>8.3f}{files:>8}{len(speakers):>10}"
                     f"{size / 2**20:>8.2f}")
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    for split in ("train", "valid"):
        secs = sum(float(r["duration"]) for r in rows if r["split"] == split)
        n = sum(1 for r in rows if r["split"] == split)
        lines.append(f"total {split}: {secs / 3600:.3f} h in {n} files")
    lines.append(f"folder {out_dir}: {total / 2**20:.2f} MiB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="Folder to write (e.g. data/gpu_subset).")
    parser.add_argument("--max-mb", type=float, default=40.0,
                        help="Size limit of the whole folder in MiB (default 40).")
    parser.add_argument("--manifest", type=Path, default=ROOT / "data/corpus/manifest.csv",
                        help="Corpus manifest to draw from.")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/dac-layout/speech16k-cpu.toml",
                        help="Recipe whose sample rate and validation clips the subset serves.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random file order.")
    parser.add_argument("--force", action="store_true", help="Replace an existing subset.")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from codec.errors import DiveqError

    try:
        rows = build_subset(args.out_dir, args.manifest, args.recipe, args.max_mb, args.seed,
                            args.force)
    except DiveqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(summary(rows, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
