"""``diveq-codec build-corpus``: make the offline training corpus (Debian speech + espeak-ng/flite).

Heavy imports (numpy, ``codec.*``) happen inside the command function.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``build-corpus`` command to ``app``."""
    app.command("build-corpus")(build_corpus_command)


def build_corpus_command(
    out_dir: Path = typer.Argument(..., help="Folder for audio/, manifest.csv, cache/."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Output sample rate (Hz)."),
    synth: bool = typer.Option(True, "--synth/--no-synth",
                               help="Add espeak-ng and flite speech (default: yes)."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Conversion processes."),
) -> None:
    """Build the training corpus in OUT_DIR (about 13 h of speech at 16 kHz).

    Fetches Debian speech packages with apt-get download (unavailable ones are skipped).
    Converts them to mono 16-bit wav at --sample-rate and adds espeak-ng/flite speech.
    Writes OUT_DIR/manifest.csv, holding out whole speakers for validation.
    Re-running resumes: files already made are kept.
    """
    from codec.config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
    from codec.data.corpus import build_corpus
    from codec.errors import UsageError

    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise UsageError(f"--sample-rate must be in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}, got {sample_rate}")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a folder")
    manifest = build_corpus(out_dir, sample_rate=sample_rate, synth=synth, jobs=jobs)
    typer.echo(f"manifest: {manifest}")
