"""Tests of codec.eval (metrics, anchors, report) and the ``eval`` command. Offline, CPU, ~20 s."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from codec.errors import AnchorError, AudioError, UsageError
from codec.eval import metrics
from codec.eval.anchors import Codec2Anchor, OpusAnchor, available_anchors
from codec.eval.report import System, evaluate, find_audio_files

SR = 16000


def speech_like(seconds: float = 2.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with formant-like peaks: ``[T]`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = np.zeros_like(t)
    for h in range(1, 40):
        f = h * f0
        envelope = (np.exp(-((f - 500) / 300) ** 2) + 0.6 * np.exp(-((f - 1500) / 400) ** 2)
                    + 0.3 * np.exp(-((f - 2500) / 500) ** 2) + 0.02)
        x += envelope * np.sin(h * phase) * (f < sample_rate / 2)
    syllables = np.clip(1.3 * np.sin(2 * np.pi * 3.5 * t), 0, 1) ** 0.5
    x = x * syllables + 0.01 * rng.standard_normal(t.shape) * syllables
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def with_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_like()


# ----------------------------------------------------------------------------------------- metrics


def test_identical_signals_score_perfectly(speech: np.ndarray) -> None:
    s = metrics.score(speech, speech.copy(), SR)
    assert set(s) == {"pesq_wb", "stoi", "mel_distance", "si_sdr"}
    assert 4.4 < s["pesq_wb"] <= 4.65
    assert s["stoi"] > 0.999
    assert s["si_sdr"] > 100
    assert s["mel_distance"] == pytest.approx(0.0, abs=1e-12)


def test_noise_lowers_scores_monotonically(speech: np.ndarray) -> None:
    scores = [metrics.score(speech, with_noise(speech, snr), SR) for snr in (40, 20, 5)]
    pesq = [s["pesq_wb"] for s in scores]
    stoi = [s["stoi"] for s in scores]
    assert pesq[0] > pesq[1] > pesq[2]
    assert stoi[0] > stoi[1] > stoi[2]
    assert scores[0]["mel_distance"] < scores[1]["mel_distance"] < scores[2]["mel_distance"]
    for s, snr in zip(scores, (40, 20, 5)):  # white noise: SI-SDR ~ SNR
        assert s["si_sdr"] == pytest.approx(snr, abs=0.5)


@pytest.mark.parametrize("shift", [37, -23, 0])
def test_align_recovers_a_known_shift(shift: int) -> None:
    ref = np.random.default_rng(3).standard_normal(8000)
    deg = np.concatenate([np.zeros(shift), ref])[:8000] if shift >= 0 else ref[-shift:]
    a, b = metrics.align(ref, deg, max_shift=100)
    assert a.shape == b.shape
    assert a.shape[0] == 8000 - abs(shift)
    np.testing.assert_array_equal(a, b)


def test_align_respects_max_shift_and_delay_does_not_hurt_scores(speech: np.ndarray) -> None:
    delayed = np.concatenate([np.zeros(200, np.float32), speech])[: speech.shape[0]]
    a, b = metrics.align(speech, delayed, max_shift=50)  # true lag out of range: not found
    assert not np.array_equal(a, b)
    assert metrics.score(speech, delayed, SR)["pesq_wb"] > 4.4  # score searches 50 ms


def test_pesq_is_nan_for_rejected_signals_and_resamples(speech: np.ndarray) -> None:
    silence = np.zeros(SR, dtype=np.float32)
    assert math.isnan(metrics.pesq_wb(silence, silence, SR))
    assert math.isnan(metrics.pesq_wb(speech[:1000], speech[:1000], SR))  # < 0.25 s
    x48 = speech_like(1.0, 48000)
    assert metrics.pesq_wb(x48, x48, 48000) > 4.4


def test_si_sdr_is_scale_invariant(speech: np.ndarray) -> None:
    assert metrics.si_sdr(speech, 0.25 * speech) > 100
    with pytest.raises(ValueError, match="length"):
        metrics.si_sdr(speech, speech[:-1])


def test_mel_scales() -> None:
    assert metrics.mel_scales(44100) == tuple(zip(metrics.MEL_WINDOW_LENGTHS, metrics.DAC_N_MELS))
    assert [n for _, n in metrics.mel_scales(16000)] == [4, 8, 15, 30, 60, 121, 241]
    for rate in (8000, 16000, 24000, 48000):
        for window, n_mels in metrics.mel_scales(rate):
            assert (metrics._mel_filters(rate, window, n_mels).max(axis=1) > 0).all()


def test_mel_distance_equals_dacs_mel_loss_at_44k() -> None:
    from audiotools import AudioSignal
    from dac.nn.loss import MelSpectrogramLoss

    rng = np.random.default_rng(4)
    x = speech_like(0.5, 44100)
    y = x + 0.03 * rng.standard_normal(x.shape).astype(np.float32)
    dac_loss = MelSpectrogramLoss(
        n_mels=list(metrics.DAC_N_MELS), window_lengths=list(metrics.MEL_WINDOW_LENGTHS),
        clamp_eps=1e-5, mag_weight=0.0, log_weight=1.0, pow=1.0, mel_fmin=[0.0] * 7,
        mel_fmax=[None] * 7)
    expected = dac_loss(AudioSignal(torch.from_numpy(y)[None, None], 44100),
                        AudioSignal(torch.from_numpy(x)[None, None], 44100)).item()
    assert metrics.mel_distance(x, y, 44100) == pytest.approx(expected, rel=1e-4)


def test_mel_distance_module_matches_numpy_and_has_gradients(speech: np.ndarray) -> None:
    refs = np.stack([speech[:8000], speech[8000:16000]])  # [2, T]
    degs = np.stack([with_noise(r, 15, seed=i) for i, r in enumerate(refs)])
    loss_fn = metrics.MelDistance(SR)
    assert len(loss_fn.state_dict()) == 0  # filterbanks are non-persistent buffers
    estimate = torch.from_numpy(degs)[:, None, :].requires_grad_(True)  # [B, 1, T]
    loss = loss_fn(estimate, torch.from_numpy(refs)[:, None, :])
    expected = np.mean([metrics.mel_distance(r, d, SR) for r, d in zip(refs, degs)])
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    loss.backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()
    assert estimate.grad.abs().sum() > 0


def test_mel_distance_module_gradient_matches_finite_differences() -> None:
    gen = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(1, 1, 3000, generator=gen, dtype=torch.float64)).requires_grad_(True)
    y = 0.1 * torch.randn(1, 1, 3000, generator=gen, dtype=torch.float64)
    loss_fn = metrics.MelDistance(SR)
    loss_fn(x, y).backward()
    direction = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        numeric = (loss_fn(x + eps * direction, y) - loss_fn(x - eps * direction, y)) / (2 * eps)
    analytic = (x.grad * direction).sum()
    assert analytic.item() == pytest.approx(numeric.item(), rel=1e-3)


# ----------------------------------------------------------------------------------------- anchors


@pytest.mark.skipif(not available_anchors()["opus"], reason="opusenc/opusdec not installed")
def test_opus_anchor_round_trip(speech: np.ndarray) -> None:
    out = OpusAnchor(6).run(speech, SR)
    decoded, n_bytes, encode_s, decode_s = out
    assert decoded.shape == speech.shape and decoded.dtype == np.float32
    real_kbps = n_bytes * 8 / 2.0 / 1000
    assert 4.0 < real_kbps < 12.0  # 6 kbps plus Ogg/Opus headers on a 2 s file
    assert encode_s > 0 and decode_s > 0
    assert 1.5 < metrics.score(speech, decoded, SR)["pesq_wb"] < 4.0
    # more bits, better quality
    better = OpusAnchor(12).run(speech, SR)
    assert better.n_bytes > n_bytes
    assert metrics.pesq_wb(speech, better.audio, SR) > metrics.pesq_wb(speech, decoded, SR)


@pytest.mark.skipif(not available_anchors()["codec2"], reason="sox/c2enc/c2dec not installed")
def test_codec2_anchor_round_trip(speech: np.ndarray) -> None:
    out = Codec2Anchor("3200").run(speech, SR)
    assert out.audio.shape == speech.shape
    assert 780 <= out.n_bytes <= 830  # 3200 bit/s * 2 s / 8 + a small header
    assert np.abs(out.audio).max() > 0.01
    assert np.isfinite(metrics.pesq_wb(speech, out.audio, SR))


def test_missing_or_failing_tool_is_a_clear_error(tmp_path: Path, speech: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert available_anchors() == {"opus": False, "codec2": False}
    with pytest.raises(AnchorError, match="opusenc"):
        OpusAnchor(6).run(speech, SR)
    for tool in ("opusenc", "opusdec"):
        script = tmp_path / tool
        script.write_text("#!/bin/sh\necho 'broken on purpose' >&2\nexit 3\n")
        script.chmod(0o755)
    with pytest.raises(AnchorError, match=r"opusenc failed \(exit 3\): broken on purpose"):
        OpusAnchor(6).run(speech, SR)


# ----------------------------------------------------------------------------------------- report


def _identity(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    return audio.copy(), audio.shape[0] * 2, 0.01, 0.02  # "16-bit PCM"


def _noisy(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    return with_noise(audio, 10)[None, :], audio.shape[0] // 8, 0.01, 0.01  # [C, T] is accepted


def _silent(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    return np.zeros_like(audio), 10, 0.01, 0.01


def _write_refs(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    soundfile.write(str(root / "a.wav"), speech_like(1.5, SR, seed=1), SR)
    stereo = np.stack([speech_like(1.5, 22050, seed=2)] * 2, axis=1)
    soundfile.write(str(root / "sub" / "b.FLAC"), stereo, 22050)
    (root / "notes.txt").write_text("not audio")


def test_report_writes_markdown_json_and_plot(tmp_path: Path) -> None:
    _write_refs(tmp_path / "refs")
    files = find_audio_files(tmp_path / "refs")
    assert [f.name for f in files] == ["a.wav", "b.FLAC"]
    systems = [System("ident", 256, _identity), System("noisy", 16, _noisy),
               System("silent", 1, _silent)]
    out = tmp_path / "out"
    results = evaluate(files, systems, out, notes=["codec2 skipped: c2enc not installed"])

    ident, noisy, silent = results.systems
    assert ident.real_kbps == pytest.approx(256.0)
    assert ident.mean["pesq_wb"] > 4.4 and ident.mean["mel_distance"] == pytest.approx(0, abs=1e-9)
    assert ident.encode_x_realtime == pytest.approx(1.5 / 0.01)
    assert ident.decode_x_realtime == pytest.approx(1.5 / 0.02)
    assert noisy.mean["pesq_wb"] < ident.mean["pesq_wb"] and noisy.std["pesq_wb"] >= 0
    assert silent.n_nan["pesq_wb"] == 2 and math.isnan(silent.mean["pesq_wb"])
    assert results.total_duration_s == pytest.approx(3.0, abs=1e-3)

    markdown = (out / "results.md").read_text()
    assert "| ident | 256 | 256.00 |" in markdown
    assert "codec2 skipped: c2enc not installed" in markdown
    assert "silent 1 kbps: pesq_wb undefined on 2 of 2 files" in markdown
    data = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in data["systems"]] == ["ident", "noisy", "silent"]
    assert data["systems"][2]["mean"]["pesq_wb"] is None
    assert len(data["systems"][0]["files"]) == 2
    assert (out / "rate_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    with pytest.raises(UsageError, match="exists"):
        evaluate(files, systems[:1], out)
    evaluate(files[:1], systems[:1], out, force=True)
    assert len(json.loads((out / "results.json").read_text())["files"]) == 1


def test_reference_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        find_audio_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no .wav"):
        find_audio_files(tmp_path / "empty")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioError, match="cannot read"):
        evaluate([bad], [System("ident", 256, _identity)], tmp_path / "out")


# ----------------------------------------------------------------------------------------- CLI


def _fake_api() -> types.ModuleType:
    """A stand-in for codec.api: 16-bit PCM 'compression' with the rate in the first 4 bytes."""
    api = types.ModuleType("codec.api")

    class FakeModel:
        config = types.SimpleNamespace(sample_rate=SR)
        weights_hash = "f" * 64

    def load_model(name_or_path: str | None = None, device: str = "auto") -> FakeModel:
        assert device == "cpu"
        return FakeModel()

    def compress(model: object, audio: np.ndarray, sample_rate: int, *,
                 bitrate_kbps: float | None = None, n_codebooks: int | None = None) -> bytes:
        assert audio.ndim == 2
        pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
        return np.uint32(sample_rate).tobytes() + pcm.tobytes()

    def decompress(data: bytes, model: object = None) -> tuple[np.ndarray, int]:
        rate = int(np.frombuffer(data[:4], dtype=np.uint32)[0])
        return (np.frombuffer(data[4:], dtype="<i2").astype(np.float32) / 32767)[None, :], rate

    api.load_model, api.compress, api.decompress = load_model, compress, decompress
    return api


@pytest.fixture()
def cli_app(monkeypatch: pytest.MonkeyPatch):
    import typer

    from cli.evaluate import register

    monkeypatch.setitem(sys.modules, "codec.api", _fake_api())
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root."""

    register(app)
    return app


def test_cli_eval_runs_and_skips_missing_anchors(tmp_path: Path, cli_app,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    _write_refs(tmp_path / "refs")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no opus/codec2 tools
    out = tmp_path / "out"
    args = ["eval", str(tmp_path / "refs"), "--bitrate", "3,6", "--against", "opus,codec2",
            "--out", str(out), "--limit", "1", "--device", "cpu"]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert [(s["name"], s["kbps"]) for s in data["systems"]] == [("diveq", 3.0), ("diveq", 6.0)]
    assert len(data["files"]) == 1
    assert data["systems"][0]["mean"]["pesq_wb"] > 4.0  # 16-bit PCM round trip
    assert data["systems"][0]["real_kbps"] == pytest.approx(256, rel=0.01)
    notes = " ".join(data["notes"])
    assert "opus skipped" in notes and "codec2 skipped" in notes
    result = CliRunner().invoke(cli_app, args)  # outputs exist, no --force
    assert result.exit_code == UsageError.exit_code and "--force" in result.output


@pytest.mark.parametrize(("extra", "code", "message"), [
    (["--bitrate", "3,abc"], UsageError.exit_code, "not a number"),
    (["--against", "mp3"], UsageError.exit_code, "unknown anchor"),
    (["--limit", "0"], UsageError.exit_code, "--limit"),
])
def test_cli_eval_bad_options(tmp_path: Path, cli_app, extra: list[str], code: int,
                              message: str) -> None:
    from typer.testing import CliRunner

    _write_refs(tmp_path / "refs")
    result = CliRunner().invoke(cli_app, ["eval", str(tmp_path / "refs"), "--out",
                                          str(tmp_path / "out"), *extra])
    assert result.exit_code == code
    assert message in result.output


def test_cli_eval_bad_reference_dir(tmp_path: Path, cli_app) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(cli_app, ["eval", str(tmp_path / "missing"), "--device", "cpu"])
    assert result.exit_code == UsageError.exit_code and "not found" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli_app, ["eval", str(tmp_path / "empty"), "--device", "cpu"])
    assert result.exit_code == AudioError.exit_code and "no .wav" in result.output


@pytest.mark.parametrize("shift", [0, 160, -120])
def test_align_uses_envelopes_when_the_waveform_is_unrelated(speech: np.ndarray, shift: int) -> None:
    # the speech's STFT magnitude with random phase: same envelope, uncorrelated waveform
    x = torch.from_numpy(speech.astype(np.float64))
    window = torch.hann_window(320, dtype=torch.float64)
    spec = torch.stft(x, 320, 80, 320, window, return_complex=True)
    phase = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scrambled = torch.istft(torch.polar(spec.abs(), 2 * torch.pi * phase), 320, 80, 320, window,
                            length=x.shape[0]).numpy()
    deg = np.concatenate([np.zeros(shift), scrambled])[: len(speech)] if shift >= 0 else scrambled[-shift:]
    a, b = metrics.align(speech, deg, max_shift=800)
    found = len(speech) - len(a) if shift >= 0 else -(len(speech) - len(b))
    assert abs(found - shift) <= 32, found  # within 2 ms at 16 kHz


def test_dnsmos_hears_added_noise_and_tones() -> None:
    """DNSMOS (no reference) ranks clean TTS speech above the same speech with noise, and above it
    with a comb of fixed tones; silence and a too-short signal have no score."""
    import soundfile

    from codec.eval.dnsmos import KEYS, dnsmos

    x, rate = soundfile.read(str(Path(__file__).parent / "data" / "speech" / "01-flite-slt.flac"),
                             dtype="float32")
    clean = dnsmos(x, rate)
    assert set(clean) == set(KEYS) and all(1.0 <= v <= 5.0 for v in clean.values())
    noisy = dnsmos(with_noise(x, 5.0), rate)
    assert noisy["dnsmos_bak"] < clean["dnsmos_bak"] - 0.5 and noisy["dnsmos_ovrl"] < clean["dnsmos_ovrl"]
    t = np.arange(x.size) / rate
    toned = x + 0.02 * (np.sin(2 * np.pi * 3400 * t) + np.sin(2 * np.pi * 4500 * t)).astype(np.float32)
    assert dnsmos(toned, rate)["dnsmos_ovrl"] < clean["dnsmos_ovrl"]
    assert all(math.isnan(v) for v in dnsmos(np.zeros(rate, np.float32), rate).values())
    assert all(math.isnan(v) for v in dnsmos(x[:100], rate).values())
