"""Build the held-out evaluation folder used in the README (data/eval_valid): up to 8 files of at least
2 s per real-speech source of the corpus's valid split (whole speakers never seen in training).

    .venv/bin/python scripts/make_eval_set.py [data/corpus/manifest.csv] [data/eval_valid]
"""

from __future__ import annotations

import csv
import random
import shutil
import sys
from pathlib import Path

SYNTHETIC_SOURCES = {"espeak", "flite"}


def main() -> None:
    manifest = Path(sys.argv[1] if len(sys.argv) > 1 else "data/corpus/manifest.csv")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "data/eval_valid")
    rows = [r for r in csv.DictReader(manifest.open()) if r["split"] == "valid"
            and r["source"] not in SYNTHETIC_SOURCES and float(r["duration"]) >= 2.0]
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    random.seed(0)
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for source, items in sorted(by_source.items()):
        random.shuffle(items)
        for row in items[:8]:
            src = manifest.parent / row["file"]
            shutil.copy(src, out / f"{source}_{src.name}")
            total += float(row["duration"])
    print(f"{out}: {sum(min(8, len(v)) for v in by_source.values())} files, {total:.1f} s "
          f"from {', '.join(sorted(by_source))}")


if __name__ == "__main__":
    main()
