"""``diveq-codec train`` and ``diveq-codec export``: thin wrappers over :mod:`codec.train`.

Heavy imports (torch, ``codec.train.*``) happen inside the command functions.
Multi-GPU / multi-process: ``torchrun --nproc_per_node N $(which diveq-codec) train RECIPE --out DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``export`` and ``export-onnx`` commands to ``app``."""
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("export-onnx")(export_onnx_command)


def train_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML file (see recipes/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (checkpoints, metrics).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/last.pt.")] = False,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", help="Override the recipe's schedule.max_steps.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(
        "--max-minutes", help="Stop cleanly (checkpoint at exit) after this many minutes.")] = None,
    max_cpu_minutes: Annotated[Optional[float], typer.Option(
        "--max-cpu-minutes", help="Stop cleanly once the run's training steps have used this many "
                                  "CPU minutes (all sessions; fair budgets on a shared machine).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="CPU threads for torch (default: torch's choice).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar.")] = True,
    init_from: Annotated[Optional[Path], typer.Option(
        "--init-from", help="Start a new run from an exported model's weights (fine-tuning); its "
                            "architecture must match the recipe's [model].")] = None,
) -> None:
    """Train a codec from a recipe; metrics go to RUN_DIR/metrics.jsonl and RUN_DIR/tb."""
    from codec.extras import require_train_extras

    require_train_extras("diveq-codec train", ("dac", "librosa", "pesq", "pystoi"))
    from codec.train.loop import train

    result = train(recipe, out, resume=resume, max_steps=max_steps, max_minutes=max_minutes,
                   device=device, threads=threads, progress=progress, init_from=init_from,
                   max_cpu_minutes=max_cpu_minutes)
    state = ("finished" if result.finished
             else "stopped early (time limit or signal; continue with --resume)")
    typer.echo(f"{state} at step {result.step}; best validation score {result.best_score:.4f} "
               f"(lower is better); checkpoints in {result.run_dir}", err=True)


def export_command(
    source: Annotated[Path, typer.Argument(
        help="Run directory (its best checkpoint, else last), a checkpoint file, or a model file "
             "(.safetensors: copied, or only given graphs with --onnx when OUT is the same file).")],
    out: Annotated[Path, typer.Argument(help="Model file to write (.safetensors; a .json card too).")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", help="Store weights as float32 or float16 (half the file); default: float32 from a "
                        "run, as stored from a model file.")] = None,
    onnx: Annotated[bool, typer.Option(
        "--onnx", help="Also write OUT's ONNX graphs (OUT.encoder.onnx, OUT.decoder.onnx) for the light "
                       "runtime; they read their weights from OUT.")] = False,
) -> None:
    """Export a release model (weights + config, no optimiser or discriminator) from a run."""
    from codec.extras import require_export_extras, require_train_extras

    if onnx:
        require_export_extras("diveq-codec export --onnx")
    require_train_extras("diveq-codec export", ("torch",))
    from codec.train.export import export_model

    path = export_model(source, out, force=force, dtype=dtype, onnx=onnx)
    typer.echo(f"wrote {path}" + (" and its ONNX graphs" if onnx else ""), err=True)


def export_onnx_command(
    models: Annotated[list[Path], typer.Argument(help="Model files (.safetensors).", show_default=False)],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing graphs.")] = False,
) -> None:
    """Write each model's ONNX graphs next to it (M.encoder.onnx, M.decoder.onnx), for the light
    runtime; they read their weights from M.safetensors, so they add ~0.2 MB, not a copy."""
    from codec.extras import require_export_extras

    require_export_extras("diveq-codec export-onnx")
    from codec.runtime.onnx_export import export_graphs

    for model in models:
        encoder, decoder = export_graphs(model, force=force)
        typer.echo(f"wrote {encoder} and {decoder}", err=True)
