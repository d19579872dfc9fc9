"""Record the built-in model's scores on the shipped speech clips (codec/eval/pinned.py).

    .venv/bin/python scripts/pin_quality.py [--model codec/pretrained/default.safetensors]

Appends an entry to tests/data/model_quality.json for the model's weights (replacing an entry of the
same weights); run it whenever a new built-in model is exported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

HISTORY = _ROOT / "tests" / "data" / "model_quality.json"
CLIPS = _ROOT / "tests" / "data" / "speech"


def main(argv: list[str] | None = None) -> int:
    from codec.api import load_model
    from codec.eval.pinned import score_clips

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model file (default: the built-in one)")
    args = parser.parse_args(argv)
    model = load_model(args.model, device="cpu")
    scores = score_clips(model, sorted(CLIPS.glob("*.flac")))
    history = json.loads(HISTORY.read_text()) if HISTORY.is_file() else {"models": []}
    history["models"] = [m for m in history["models"] if m["sha256"] != model.weights_hash]
    history["models"].append({"name": model.config.name, "sha256": model.weights_hash,
                              "date": datetime.date.today().isoformat(), "scores": scores})
    HISTORY.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
