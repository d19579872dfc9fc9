"""The ``diveq-codec`` command line, run through the installed console script in subprocesses.

Every user error must give exactly one stderr line ``error: ...``, the exit code of its error class,
no traceback, and no output (or temporary) file. Independent runs go in parallel to keep this fast.
"""

from __future__ import annotations

import os
import re
import signal as signals
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer
from typer.testing import CliRunner

from codec import api
from codec.config import ModelConfig, QuantizerConfig
from codec.models.builder import build_codec
from codec.models.weights import save_model
from support import copy_model

SCRIPT = Path(sys.executable).parent / "diveq-codec"
TIMEOUT = 180


def tiny_model(path: Path, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    save_model(build_codec(ModelConfig(name=name, encoder_dim=4, decoder_dim=16, latent_dim=8,
                                 quantizer=QuantizerConfig(n_codebooks=3, codebook_size=16,
                                                           codebook_dim=4))), path)
    return path


def tone(channels: int, rate: int, seconds: float) -> np.ndarray:
    """[T, C] float32 test audio (soundfile's layout)."""
    t = np.arange(round(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) * np.sin(2 * np.pi * 1.5 * t)
                  for c in range(channels)], axis=1)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_with_graphs: Path) -> dict[str, Path]:
    """Models, audio inputs and streams (good and damaged) shared by the tests of this module. The
    tiny model has ONNX graphs (the commands run it on onnxruntime unless --runtime torch)."""
    d = tmp_path_factory.mktemp("cli")
    f = {"model": copy_model(tiny_model_with_graphs, d),
         "other_model": tiny_model(d / "other.safetensors", "other-model", 1),
         "stereo": d / "stereo.wav", "nan": d / "nan.wav", "text": d / "notes.wav"}
    sf.write(f["stereo"], tone(2, 44100, 1.5), 44100, subtype="PCM_24")
    bad = tone(1, 16000, 0.5)
    bad[100, 0] = np.nan
    sf.write(f["nan"], bad, 16000, subtype="FLOAT")
    f["text"].write_text("not audio at all\n" * 50)
    model = api.load_model(f["model"], "cpu")
    good = api.compress(model, tone(1, 16000, 2.0).T, 16000, window=40)
    other = api.compress(api.load_model(f["other_model"], "cpu"), tone(1, 16000, 0.5).T, 16000)
    damaged = {
        "good": good,
        "badmagic": b"RIFF" + good[4:],
        "newer": good[:4] + (3).to_bytes(2, "little") + good[6:],  # the current version is 2
        "truncated": good[: len(good) - 7],
        "flipped": good[:-3] + bytes([good[-3] ^ 0x40]) + good[-2:],  # in the last chunk's codes
        "other": other,
    }
    for name, data in damaged.items():
        f[name] = d / f"{name}.dvq"
        f[name].write_bytes(data)
    return f


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (pip install -e .)"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env=env)


def run_many(*commands: tuple[object, ...]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: run(*c), commands))


def assert_error(result: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    where = f"\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, where
    assert result.returncode == code, where
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    assert re.search(pattern, lines[0]), where


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("out") or ".part" in p.name)


# --------------------------------------------------------------------------------------------


def test_help_version_and_lazy_imports() -> None:
    help_, version = run_many(("--help",), ("--version",))
    assert help_.returncode == 0 and all(c in help_.stdout for c in ("encode", "decode", "info"))
    assert version.returncode == 0 and re.match(r"diveq-codec \S+", version.stdout)
    probe = subprocess.run([sys.executable, "-c", "import sys, cli.main; "
                            "print(sorted(m for m in ('torch', 'codec.api', 'soundfile') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_round_trip(tmp_path: Path, files: dict[str, Path], runtime: str) -> None:
    dvq, dvq2, back = tmp_path / "x.dvq", tmp_path / "x2.dvq", tmp_path / "back.wav"
    enc, enc2 = run_many(("encode", files["stereo"], dvq, "--model", files["model"], "--device", "cpu",
                          "--runtime", runtime),
                         ("encode", files["stereo"], dvq2, "-m", files["model"], "--n-codebooks", "2",
                          "--runtime", runtime))
    assert enc.returncode == 0 and enc2.returncode == 0, enc.stderr + enc2.stderr
    assert enc.stderr == ""  # no warnings or progress noise for a short file off a terminal
    info, info2, dec = run_many(("info", dvq), ("info", dvq2),
                                ("decode", dvq, back, "--model", files["model"], "--runtime", runtime))
    assert info.returncode == 0 and "44100 Hz" in info.stdout and "3 x 16 codes" in info.stdout
    assert "2 x 16 codes" in info2.stdout and "channels:" in info2.stdout
    assert dec.returncode == 0, dec.stderr
    out = sf.info(str(back))
    assert (out.samplerate, out.channels, out.frames, out.subtype) == (44100, 2, 66150, "PCM_16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.wav", "x.dvq", "x2.dvq"]
    umask = os.umask(0)
    os.umask(umask)
    for path in (dvq, back):  # outputs get normal permissions, not the temporary file's 0o600
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_folders(tmp_path: Path, files: dict[str, Path]) -> None:
    src, ready = tmp_path / "in", tmp_path / "ready"
    (src / "sub").mkdir(parents=True)
    (ready / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", tone(1, 8000, 0.5), 8000)
    sf.write(src / "sub" / "b.flac", tone(2, 48000, 0.5), 48000)
    (src / "readme.txt").write_text("skipped")
    model = api.load_model(files["model"], "cpu")  # streams made in-process, decoded in parallel
    api.encode_file(model, src / "a.wav", ready / "a.dvq")
    api.encode_file(model, src / "sub" / "b.flac", ready / "sub" / "b.dvq")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "a.wav").write_bytes(b"keep")
    m = ("--model", files["model"])
    enc, dec, again = run_many(("encode", src, tmp_path / "codes", *m, "--bitrate", "0.5"),
                               ("decode", ready, tmp_path / "back", *m),
                               ("decode", ready, partial, *m))
    assert enc.returncode == 0, enc.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "codes").rglob("*.dvq")) == [
        "codes/a.dvq", "codes/sub/b.dvq"]
    assert api.read_stream_header(tmp_path / "codes" / "a.dvq").n_codebooks == 2  # 0.5 kbps
    assert dec.returncode == 0, dec.stderr
    b = sf.info(str(tmp_path / "back" / "sub" / "b.wav"))
    assert (b.samplerate, b.channels, b.frames) == (48000, 2, 24000)
    assert sf.info(str(tmp_path / "back" / "a.wav")).frames == 4000
    # one file fails (its output exists), the other is still decoded; exit code of the failure
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.count("error: ") == 1 and "exists" in again.stderr
    assert (partial / "a.wav").read_bytes() == b"keep" and (partial / "sub" / "b.wav").is_file()


def test_error_cases(tmp_path: Path, files: dict[str, Path]) -> None:
    existing, replaced = tmp_path / "out-existing.dvq", tmp_path / "out-replaced.dvq"
    existing.write_bytes(b"precious")
    replaced.write_bytes(b"old")
    m = ("--model", files["model"])
    cases = [  # (arguments, exit code, pattern in the message)
        (("encode", tmp_path / "missing.wav", tmp_path / "out1.dvq", *m), 3, "no such file"),
        (("encode", files["text"], tmp_path / "out2.dvq", *m), 3, "not a readable audio file"),
        (("encode", files["nan"], tmp_path / "out3.dvq", *m), 3, r"NaN or Inf.*sample 100"),
        (("encode", files["stereo"], existing, *m), 2, r"exists.*--force"),
        (("decode", files["badmagic"], tmp_path / "out4.wav", *m), 4, r"not a \.dvq file"),
        (("decode", files["newer"], tmp_path / "out5.wav", *m), 4, r"newer diveq-codec"),
        (("decode", files["truncated"], tmp_path / "out6.wav", *m), 4, "truncated"),
        (("decode", files["flipped"], tmp_path / "out7.wav", *m), 4, "CRC mismatch"),
        (("decode", files["other"], tmp_path / "out8.wav", *m), 4, r"another model \(weights .*'tiny'"),
        (("decode", tmp_path / "missing.dvq", tmp_path / "out9.wav", *m), 4, "no such file"),
        (("info", files["truncated"]), 4, "truncated"),
        (("encode", files["stereo"], tmp_path / "out10.dvq", "--model", tmp_path / "nope.safetensors"),
         5, "no such model file"),
        (("encode", files["stereo"], tmp_path / "out11.dvq", *m, "--bitrate", "1", "-n", "1"), 2,
         "not both"),
        (("encode", files["stereo"], tmp_path / "out12.dvq", *m, "--bitrate", "0.01"), 2,
         "below one stage"),
        (("decode", files["good"], tmp_path / "out13.mp4", *m), 2, "unsupported audio output"),
    ]
    if not torch.cuda.is_available():
        cases.append((("encode", files["stereo"], tmp_path / "out14.dvq", *m, "--device", "cuda"), 7,
                      "no CUDA GPU"))
    forced, *results = run_many(("encode", files["stereo"], replaced, *m, "--force"),
                                *(args for args, _, _ in cases))
    for (args, code, pattern), result in zip(cases, results):
        assert_error(result, code, pattern)
    assert existing.read_bytes() == b"precious"
    assert forced.returncode == 0 and replaced.read_bytes()[:4] == b"DVQC"
    assert leftovers(tmp_path) == ["out-existing.dvq", "out-replaced.dvq"]


def test_ctrl_c_leaves_no_partial_file(tmp_path: Path, files: dict[str, Path]) -> None:
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(tone(1, 16000, 1.0), (300, 1)), 16000)  # 5 minutes: seconds of work
    out = tmp_path / "out.dvq"
    env = {**os.environ, "NO_COLOR": "1"}
    # a shell starts background jobs with SIGINT ignored, and a child inherits that (then Ctrl-C would
    # rightly do nothing): give the command the default disposition, as a terminal's foreground job has
    proc = subprocess.Popen([str(SCRIPT), "encode", str(long), str(out), "--model", str(files["model"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL))
    deadline = time.monotonic() + TIMEOUT
    while not list(tmp_path.glob(".out.dvq.*.part")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signals.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip() == "error: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


def test_register_command_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import DiveqApp, register_command_modules

    (tmp_path / "fake_cmds.py").write_text(textwrap.dedent("""
        from codec.errors import ConfigError

        def register(app):
            @app.command()
            def boom(key: str) -> None:
                raise ConfigError(f"{key}: unknown key\\nsecond line")

            @app.command()
            def hello() -> None:
                print("hello")
    """))
    (tmp_path / "broken_cmds.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = DiveqApp()
    register_command_modules(app, ("fake_cmds", "cli.not_written_yet"))
    with pytest.raises(ModuleNotFoundError, match="a_module_that_is_not_installed"):
        register_command_modules(DiveqApp(), ("broken_cmds",))
    runner = CliRunner()
    result = runner.invoke(app, ["boom", "recipe.lr"])
    assert result.exit_code == 6
    assert result.output.strip() == "error: recipe.lr: unknown key second line"
    assert runner.invoke(app, ["hello"]).output == "hello\n"
    assert isinstance(app, typer.Typer)


def test_folder_mode_reads_every_input_format_and_leaves_no_empty_folders(
        tmp_path: Path, files: dict[str, Path]) -> None:
    """Folder mode takes the extensions single files accept (.mp3 too), and a file that fails leaves
    no empty output folder behind (issue 11, item 9). In-process: the same code path as the script."""
    from cli.main import app

    src = tmp_path / "in"
    (src / "broken").mkdir(parents=True)
    sf.write(src / "voice.mp3", tone(1, 16000, 0.5), 16000, format="MP3")
    sf.write(src / "take.aiff", tone(2, 22050, 0.3), 22050, format="AIFF")
    (src / "broken" / "notes.wav").write_text("not audio\n")
    result = CliRunner().invoke(app, ["encode", str(src), str(tmp_path / "codes"), "--model",
                                      str(files["model"])])
    assert result.exit_code == 3, result.output
    assert "not a readable audio file" in result.output and "encoded 2 of 3 files" in result.output
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "codes").rglob("*")) == [
        "codes/take.dvq", "codes/voice.dvq"]
