"""``diveq-codec compare``: the listening page of ``eval`` for one file a user brings.

Heavy imports (numpy, torch, ``codec.*``) happen inside the command function.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.evaluate import build_systems, parse_anchors, parse_bitrates, run_report


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare")(compare_command)


def compare_command(
    input: Path = typer.Argument(..., help="Audio file (wav, flac, ogg; 8-96 kHz, any channels)."),
    out: Path = typer.Option(..., "--out", help="Folder for index.html, the decoded audio, "
                                                "spectrograms and results.md/json/png."),
    bitrate: str = typer.Option("1.5,3,6", "--bitrate", help="Comma-separated diveq kbps."),
    against: str = typer.Option("opus,codec2", "--against",
                                help="Anchors: comma-separated of opus, codec2; or 'none'."),
    model: str | None = typer.Option(None, "--model",
                                     help="Model file or name (default: the built-in model)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty --out."),
) -> None:
    """One file through diveq and the anchors: a page to listen and look (--out/index.html).

    The file is coded by diveq at each --bitrate and by each anchor, scored like `eval` does (mixed
    to mono, resampled to 16 kHz), and shown side by side: players, spectrograms and scores. The
    decoded files (16-bit FLAC) are written under --out/audio; open index.html in a browser.
    """
    from codec.errors import DiveqError

    try:
        _compare(input, out, bitrate, against, model, device, force)
    except DiveqError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _compare(input: Path, out: Path, bitrate: str, against: str, model_name: str | None,
             device: str, force: bool) -> None:
    from codec.extras import require_train_extras

    require_train_extras("diveq-codec compare", ("librosa", "pesq", "pystoi", "matplotlib", "PIL",
                                                 "speechmos"))
    from codec.api import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
    from codec.errors import AudioError
    from codec.eval.outdir import check_output_folder
    from codec.io.audio import audio_info

    bitrates = parse_bitrates(bitrate)
    anchors = parse_anchors(against)
    check_output_folder(out, force)  # fail before any slow work
    info = audio_info(input)
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{input}: sample rate {info.sample_rate} Hz is outside "
                         f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if info.n_samples == 0:
        raise AudioError(f"audio file is empty: {input}")

    systems, notes = build_systems(model_name, device, bitrates, anchors)
    run_report([input], systems, out, notes, force, listen=1,
               title=f"diveq-codec compare: {input.name}")
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out / 'index.html'} (open it in a browser) and the decoded audio in "
               f"{out / 'audio'}")
