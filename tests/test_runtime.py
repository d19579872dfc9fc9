"""The light runtime: with the ``[train]`` extras unimportable (a ``sys.meta_path`` blocker installed by
a ``sitecustomize`` module), the API and the CLI still encode, decode, inspect and transcode with the
built-in model, and the commands that need the extras say so in one line. With torch unimportable as
well (what ``pip install diveq-codec`` gives), the same runs on onnxruntime, and whatever needs torch
(``--runtime torch``, a model without ONNX graphs) says so in one line with the install hint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.extras import (
    EXPORT_INSTALL_HINT,
    EXPORT_MODULES,
    INSTALL_HINT,
    TORCH_INSTALL_HINT,
    TORCH_MODULES,
    TRAIN_MODULES,
)
from support import save_tiny_model

SCRIPT = Path(sys.executable).parent / "diveq-codec"
TIMEOUT = 240

BLOCKER = textwrap.dedent("""
    import importlib.abc
    import sys

    BLOCKED = {blocked!r}


    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None


    sys.meta_path.insert(0, _Blocker())
""")

API_SCRIPT = textwrap.dedent("""
    import sys

    import numpy as np

    from codec import api

    model = api.load_model(None, "cpu")  # the built-in default model
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]  # [1, T]
    data = api.compress(model, audio, 16000, bitrate_kbps=3)
    back, rate = api.decompress(data, model)
    assert rate == 16000 and back.shape == audio.shape, (rate, back.shape)
    assert len(api.transcode(data, n_codebooks=1)) < len(data)
    imported = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("ok", len(data), imported)
""")


def _env_blocking(site: Path, blocked: set[str]) -> dict[str, str]:
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The [train] extras unimportable."""
    return _env_blocking(tmp_path_factory.mktemp("blocked-site"), set(TRAIN_MODULES))


@pytest.fixture(scope="module")
def light_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the light install has: neither the [train] extras nor torch (nor safetensors)."""
    blocked = set(TRAIN_MODULES) | set(TORCH_MODULES) | set(EXPORT_MODULES)
    return _env_blocking(tmp_path_factory.mktemp("light-site"), blocked)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def test_the_blocker_blocks(blocked_env: dict[str, str]) -> None:
    probe = _run([sys.executable, "-c", "import dac"], blocked_env)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr


def test_api_codes_without_the_training_extras(blocked_env: dict[str, str]) -> None:
    result = _run([sys.executable, "-c", "from sitecustomize import BLOCKED\n" + API_SCRIPT], blocked_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ") and result.stdout.strip().endswith("[]"), result.stdout


def test_cli_without_the_training_extras(blocked_env: dict[str, str], tmp_path: Path) -> None:
    wav, dvq, back, low = (tmp_path / name for name in ("in.wav", "x.dvq", "back.wav", "low.dvq"))
    t = np.arange(24000) / 16000
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, subtype="PCM_16")
    encode = _run([str(SCRIPT), "encode", str(wav), str(dvq), "--bitrate", "3"], blocked_env)
    assert encode.returncode == 0, encode.stderr
    with ThreadPoolExecutor(max_workers=3) as pool:
        decode, info, transcode = pool.map(lambda a: _run([str(SCRIPT), *a], blocked_env), (
            ["decode", str(dvq), str(back)], ["info", str(dvq)],
            ["transcode", str(dvq), str(low), "--bitrate", "1.5"]))
    for result in (decode, info, transcode):
        assert result.returncode == 0, result.stderr
    assert sf.info(back).frames == 24000 and "16000 Hz" in info.stdout
    assert low.stat().st_size < dvq.stat().st_size


@pytest.mark.parametrize("command", [["train", "recipes/debug.toml", "--out", "{tmp}/run"],
                                     ["eval", "{tmp}"], ["compare", "{tmp}/in.wav", "--out", "{tmp}/c"]])
def test_commands_that_need_the_extras_say_how_to_install_them(blocked_env: dict[str, str],
                                                               tmp_path: Path, command: list[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    if args[0] == "train":
        args[1] = str(root / args[1])
    result = _run([str(SCRIPT), *args], blocked_env)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and INSTALL_HINT in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_the_light_blocker_blocks_torch(light_env: dict[str, str]) -> None:
    probe = _run([sys.executable, "-c", "import torch"], light_env)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr


def test_api_codes_without_torch(light_env: dict[str, str]) -> None:
    """load_model / compress / decompress / transcode / encode_file / decode_file on onnxruntime."""
    script = API_SCRIPT + textwrap.dedent("""
        import tempfile
        from pathlib import Path

        assert model.runtime == "onnx", model
        folder = Path(tempfile.mkdtemp())
        (folder / "x.dvq").write_bytes(data)
        api.decode_file(folder / "x.dvq", folder / "x.wav")  # the built-in model that made it
        api.encode_file(api.load_model(), folder / "x.wav", folder / "y.dvq", bitrate_kbps=6)
        assert "torch" not in sys.modules and "safetensors" not in sys.modules
        print("light ok")
    """)
    result = _run([sys.executable, "-c", "from sitecustomize import BLOCKED\n" + script], light_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("light ok"), result.stdout


def test_cli_without_torch(light_env: dict[str, str], tmp_path: Path) -> None:
    """encode / decode / info / transcode, a folder, and the one-line refusals of what needs torch."""
    test_cli_without_the_training_extras(light_env, tmp_path)
    folder = tmp_path / "wavs"
    folder.mkdir()
    (folder / "a.wav").write_bytes((tmp_path / "back.wav").read_bytes())
    plain = save_tiny_model(tmp_path / "plain.safetensors")  # no ONNX graphs
    wav = str(tmp_path / "in.wav")
    with ThreadPoolExecutor(max_workers=4) as pool:
        folder_run, torch_run, plain_run, cuda_run, export_run = pool.map(
            lambda a: _run([str(SCRIPT), *a], light_env), (
                ["encode", str(folder), str(tmp_path / "dvqs")],
                ["encode", wav, str(tmp_path / "t.dvq"), "--runtime", "torch"],
                ["encode", wav, str(tmp_path / "p.dvq"), "--model", str(plain)],
                ["decode", str(tmp_path / "x.dvq"), str(tmp_path / "c.wav"), "--device", "cuda"],
                ["export-onnx", str(plain)]))
    export_lines = export_run.stderr.strip().splitlines()
    assert export_run.returncode == 2 and len(export_lines) == 1, export_run.stderr
    assert "export-onnx needs the export extras (missing: torch, onnx, onnxscript)" in export_lines[0]
    assert EXPORT_INSTALL_HINT in export_lines[0]
    assert folder_run.returncode == 0 and (tmp_path / "dvqs" / "a.dvq").is_file(), folder_run.stderr
    for result, what in ((torch_run, "the torch runtime"), (plain_run, "model plain.safetensors"),
                         (cuda_run, "--device cuda")):
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {what}") and TORCH_INSTALL_HINT in lines[0], lines[0]
    assert not any((tmp_path / name).exists() for name in ("t.dvq", "p.dvq", "c.wav"))


def test_streaming_without_torch(light_env: dict[str, str], tmp_path: Path) -> None:
    """``encode --stream`` / ``decode --stream`` with no --model: the built-in causal model's frame
    graphs on onnxruntime, torch unimportable; the stream decodes to its length."""
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(16000) * 2000).astype("<i2").tobytes()
    enc = subprocess.run([str(SCRIPT), "encode", "--stream", "-", "-"], input=pcm, capture_output=True,
                         timeout=TIMEOUT, env=light_env)
    assert enc.returncode == 0 and enc.stdout, enc.stderr.decode()
    dec = subprocess.run([str(SCRIPT), "decode", "--stream", "-", "-"], input=enc.stdout, capture_output=True,
                         timeout=TIMEOUT, env=light_env)
    assert dec.returncode == 0 and len(dec.stdout) == len(pcm), dec.stderr.decode()
