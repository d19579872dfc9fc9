"""Score a model file on a recipe's validation clips, exactly as training validates (the step-0
baseline of a fork started with --init-from, or any exported model).

    .venv/bin/python scripts/validate_model.py MODEL.safetensors RECIPE.toml [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from codec.models.weights import load_model_file
from codec.train.batches import build_validation_clips
from codec.train.recipe import load_recipe
from codec.train.validation import validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("recipe")
    parser.add_argument("--json", help="also write the scores here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seen", type=int, default=None,
                        help="real-speech clips of training and of held-out speakers to score too "
                             "(default: the recipe's validation.seen_items)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    model = load_model_file(args.model).float()
    t0 = time.process_time()
    n_seen = recipe.validation.seen_items if args.seen is None else args.seen
    real = recipe.validation.seen_sources
    gap = ((build_validation_clips(recipe, "train", n_seen, real),
            build_validation_clips(recipe, "valid", n_seen, real)) if n_seen else ([], []))
    scores = validate(model, build_validation_clips(recipe), recipe, torch.device("cpu"), gap)
    scores = {k: v for k, v in scores.items() if "usage" not in k and "perplexity" not in k}
    for key in sorted(scores):
        print(f"{key:24s} {scores[key]:.4f}")
    print(f"({time.process_time() - t0:.0f} CPU-s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
