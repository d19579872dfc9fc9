"""Tests of the listening page (codec.eval.spectrogram, codec.eval.outdir, codec.eval.listen), of
``eval --listen`` and ``compare``, and of the page in a real, headless Chromium. Offline, CPU."""

from __future__ import annotations

import json
import math
import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile

from codec.errors import AudioError, UsageError
from codec.eval.listen import (DecodedStore, choose_clips, file_ranking_scores, to_pcm16,
                               write_listening_page)
from codec.eval.outdir import staged_folder
from codec.eval.report import System, load_reference, measure, write_report
from codec.eval.spectrogram import (LEVELS, MAX_COLUMNS, MAX_ROWS, band_errors, colour_indices,
                                    log_spectrogram, stft_size)
from test_eval import _fake_api, speech_like, with_noise

SR = 16000


# ------------------------------------------------------------------------------------ spectrogram


def test_log_spectrogram_puts_a_sine_in_its_bin() -> None:
    n_fft, hop = stft_size(SR)
    assert (n_fft, hop) == (512, 160)
    t = np.arange(SR) / SR
    spec = log_spectrogram(0.5 * np.sin(2 * np.pi * 1000 * t), SR)
    assert spec.shape == (n_fft // 2 + 1, SR // hop + 1)
    assert int(np.argmax(spec[:, 50])) == round(1000 * n_fft / SR)
    # a full-scale-ish sine: |X| ~ amplitude * n_fft / 4 at its bin
    assert spec[32, 50] == pytest.approx(20 * np.log10(0.5 * n_fft / 4), abs=1.0)
    assert log_spectrogram(np.zeros(0), SR).shape == (n_fft // 2 + 1, 1)


def test_colour_indices_scale_flip_and_pooling() -> None:
    spec = np.full((257, 10), -100.0)
    spec[0, :] = 20.0    # lowest bin at the top of the scale
    spec[-1, 3] = -20.0  # highest bin, 40 dB down: the middle of an 80 dB scale
    idx = colour_indices(spec, top_db=20.0, range_db=80.0)
    assert idx.shape == (129, 10)  # 257 bins max-pooled in pairs (MAX_ROWS = 160)
    assert idx.dtype == np.uint8 and MAX_ROWS >= idx.shape[0]
    assert (idx[-1] == LEVELS - 1).all()  # row 0 is the highest frequency, so 0 Hz is the last row
    assert idx[0, 3] == round(0.5 * (LEVELS - 1)) and idx[0, 0] == 0
    assert idx[1:-1].max() == 0  # below the floor
    wide = colour_indices(np.zeros((8, 3 * MAX_COLUMNS + 1)), top_db=0.0)
    assert wide.shape == (8, math.ceil((3 * MAX_COLUMNS + 1) / 4))
    with pytest.raises(ValueError):
        colour_indices(np.zeros((8, 0)), top_db=0.0)


def test_band_errors_find_a_missing_band_and_ignore_delay() -> None:
    import soxr

    x = with_noise(speech_like(1.5, SR, seed=3), 30)
    delayed = np.concatenate([np.zeros(240, np.float32), x])[: x.shape[0]]
    near = band_errors(x, delayed, SR)
    assert near.shape == (16,)  # 500 Hz bands up to 8 kHz
    assert np.nanmax(near) < 1.5
    lowpassed = soxr.resample(soxr.resample(x, SR, 8000), 8000, SR)[: x.shape[0]]
    errors = band_errors(x, lowpassed, SR)
    assert errors[:6].max() < 3.0  # 0-3 kHz kept
    assert errors[9:15].min() > 10.0  # 4.5-7.5 kHz gone
    assert np.isnan(band_errors(np.zeros(SR), x[:SR], SR)).all()  # nothing to compare against


# ---------------------------------------------------------------------------------------- outdir


def test_staged_folder_appears_at_once_and_never_half(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report"
    with staged_folder(target) as stage:
        (stage / "a.txt").write_text("a")
        (stage / "d").mkdir()
        (stage / "d" / "b.txt").write_text("b")
        assert not target.exists()
    assert (target / "d" / "b.txt").read_text() == "b"
    assert os.stat(target).st_mode & 0o777 == 0o777 & ~_umask()

    with pytest.raises(UsageError, match="--force"):
        with staged_folder(target):
            pass
    (target / "keep.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(target, force=True) as stage:
            (stage / "a.txt").write_text("new")
            raise KeyboardInterrupt
    assert (target / "a.txt").read_text() == "a"
    with staged_folder(target, force=True) as stage:
        (stage / "a.txt").write_text("new")
        (stage / "d").mkdir()
        (stage / "d" / "c.txt").write_text("c")
    assert (target / "a.txt").read_text() == "new"
    assert sorted(p.name for p in (target / "d").iterdir()) == ["c.txt"]  # the old folder replaced
    assert (target / "keep.txt").read_text() == "mine"  # other files untouched

    with pytest.raises(UsageError, match="cannot replace file"):
        with staged_folder(target, force=True) as stage:
            (stage / "b.txt").write_text("b")  # would move first (sorted) ...
            (stage / "keep.txt").mkdir()  # ... but this clash is found before anything moves
    assert not (target / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temporary folder left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        with staged_folder(tmp_path / "file", force=True):
            pass


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# ------------------------------------------------------------------------------------------- page


def _quieter(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    return 0.25 * audio, audio.shape[0] // 4, 0.01, 0.01  # -12 dB, otherwise perfect


def _noisy_by_file(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    snr = 5 + 5 * (audio.shape[0] // 1600 % 4)  # 5-20 dB: the refs differ in length by 0.1 s
    return with_noise(audio, snr), audio.shape[0] // 16, 0.01, 0.01


def _lowpass(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
    import soxr

    out = soxr.resample(soxr.resample(audio, sample_rate, 8000), 8000, sample_rate)
    return out[: audio.shape[0]], audio.shape[0] // 20, 0.01, 0.01


class _Page(HTMLParser):
    """Collects what the tests check: links, media, and the ``<data>`` elements with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.data: list[dict[str, str]] = []
        self.counts: dict[str, int] = {}
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.counts[tag] = self.counts.get(tag, 0) + 1
        for key in ("src", "href"):
            if key in a:
                self.refs.append((tag, a[key]))
        if tag == "data":
            self._open = dict(a, text="")

    def handle_data(self, text: str) -> None:
        if self._open is not None:
            self._open["text"] += text

    def handle_endtag(self, tag: str) -> None:
        if tag == "data" and self._open is not None:
            self.data.append(self._open)
            self._open = None


def _parse(page: Path) -> _Page:
    parser = _Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def make_page(root: Path, n_files: int = 4, n_clips: int = 3) -> tuple[Path, list[Path], object]:
    """Refs in root/refs, a report + listening page in root/out; returns (out, files, results)."""
    refs = root / "refs"
    refs.mkdir(parents=True)
    for i in range(n_files):
        soundfile.write(str(refs / f"clip {i}.wav"), speech_like(1.2 + 0.1 * i, SR, seed=i), SR)
    files = sorted(refs.glob("*.wav"))
    systems = [System("diveq", 1.5, _noisy_by_file), System("diveq", 6, _quieter),
               System("opus", 6, _lowpass)]
    store = DecodedStore(root / "decoded")
    results = measure(files, systems, notes=["anchors measured: opus"], on_decoded=store.save)
    out = root / "out"
    results = write_report(results, out)
    write_listening_page(results, out, n_clips=n_clips, decoded=store.load,
                         reference=lambda i: load_reference(files[i], SR))
    return out, files, results


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _, _ = make_page(tmp_path_factory.mktemp("page"))
    return out


#: The example page the README links (scripts/make_listen_example.py); checked like a new one.
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "listen-example"


@pytest.fixture(params=["generated", "docs example"])
def any_page(request: pytest.FixtureRequest) -> Path:
    """A page made here from fake systems, then the example page shipped in docs/."""
    return request.getfixturevalue("page_dir") if request.param == "generated" else EXAMPLE


def test_choose_clips_spans_the_ranking(tmp_path: Path) -> None:
    _, _, results = make_page(tmp_path, n_files=5, n_clips=0)
    scores = file_ranking_scores(results, "diveq")
    expected = np.nanmean([[f.scores["pesq_wb"] for f in s.files] for s in results.systems[:2]],
                          axis=0)
    np.testing.assert_allclose(scores, expected)
    order = list(np.argsort(scores, kind="stable"))
    clips = choose_clips(results, 3)
    assert [c.index for c in clips] == [order[0], order[2], order[4]]
    assert [c.label for c in clips] == ["worst", "median", "best"]
    assert [c.label for c in choose_clips(results, 5)] == [
        "worst", "25th percentile", "median", "75th percentile", "best"]
    assert len(choose_clips(results, 9)) == 5 and choose_clips(results, 0) == []
    assert [c.index for c in choose_clips(results, 2, rank_by="opus")] == [
        int(np.argmin(s := [f.scores["pesq_wb"] for f in results.systems[2].files])),
        int(np.argmax(s))]
    with pytest.raises(ValueError, match="codec2"):
        choose_clips(results, 3, rank_by="codec2")


def test_every_file_the_page_refers_to_exists_and_nothing_is_remote(any_page: Path) -> None:
    page_dir = any_page
    page = _parse(page_dir / "index.html")
    n_cards = len(json.loads((page_dir / "results.json").read_text())["systems"]) + 1
    assert page.counts["audio"] % n_cards == 0 and page.counts["audio"] >= 2 * n_cards
    assert page.counts["img"] == page.counts["audio"] + 1  # + the rate-quality plot
    assert page.counts.get("script", 0) == 0
    for tag, url in page.refs:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc and not url.startswith("/"), url
        path = page_dir / unquote(parsed.path)
        assert path.is_file() and path.stat().st_size > 0, url
        assert page_dir.resolve() in path.resolve().parents
    audio = [unquote(u) for t, u in page.refs if t == "audio"]
    for url in audio:
        info = soundfile.info(str(page_dir / url))
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC", "PCM_16", SR, 1)
    files_on_disk = {p.relative_to(page_dir).as_posix() for p in page_dir.rglob("*") if p.is_file()}
    referenced = {unquote(u) for _, u in page.refs}
    assert files_on_disk == referenced | {"index.html"}  # and nothing unreferenced is left


def test_every_score_on_the_page_matches_results_json(any_page: Path) -> None:
    data = json.loads((any_page / "results.json").read_text())
    page = _parse(any_page / "index.html")
    seen = set()
    for item in page.data:
        metric = item["data-metric"]
        if "data-system" not in item:  # the originals' own (no-reference) scores
            expected = data["original"][metric]
            assert float(item["value"]) == expected, item
            seen.add(("original", metric))
            continue
        system = data["systems"][int(item["data-system"])]
        if "data-file" in item:
            entry = system["files"][int(item["data-file"])]
            if metric == "real_kbps":
                expected = entry["n_bytes"] * 8 / entry["duration_s"] / 1000
            else:
                expected = entry["scores"][metric]
        elif metric == "real_kbps":
            expected = system["real_kbps"]
        else:
            expected = system[item["data-stat"]][metric]
        value = float(item["value"])
        if expected is None:
            assert math.isnan(value) and item["text"] == "n/a"
            continue
        assert value == expected, item  # the same float, not a rounded one
        digits = {"pesq_wb": 2, "stoi": 3, "mel_distance": 2, "si_sdr": 1, "real_kbps": 2,
                  "dnsmos_ovrl": 2, "dnsmos_sig": 2, "dnsmos_bak": 2, "dnsmos_p808": 2, "tone_db": 1}[metric]
        assert item["text"].split()[0] == f"{expected:.{digits}f}", item
        seen.add((item.get("data-file"), item["data-system"], metric, item.get("data-stat")))
    n_systems, n_files = len(data["systems"]), len(data["files"])
    n_clips = page.counts["audio"] // (n_systems + 1)
    # the table: per system real kbps and mean (+- std) of 9 scores, the originals' 4 DNSMOS scores;
    # per clip and system: real kbps and 5 scores
    table = n_systems * (1 + 9 * (2 if n_files > 1 else 1)) + 4
    assert len(seen) == table + n_clips * n_systems * 6


def test_spectrograms_of_a_clip_share_one_colour_scale(page_dir: Path) -> None:
    from PIL import Image

    folder = next((page_dir / "spectrograms").iterdir())
    original = np.asarray(Image.open(folder / "original.png"))
    quieter = np.asarray(Image.open(folder / "diveq-6kbps.png"))  # the same audio at -12 dB
    lowpass = np.asarray(Image.open(folder / "opus-6kbps.png"))
    assert original.shape == quieter.shape == lowpass.shape
    assert original.max() == LEVELS - 1
    # one scale per row: the quieter copy is darker (12 dB = ~9.4 of 64 colour steps), not rescaled
    loud = original > 20
    assert np.mean(original[loud].astype(float) - quieter[loud]) == pytest.approx(
        12 / 80 * (LEVELS - 1), abs=1.0)
    rows = original.shape[0]
    assert lowpass[: rows // 2 - 2].mean() < 0.2 * original[: rows // 2 - 2].mean()  # > 4 kHz gone


def test_page_stores_decoded_audio_exactly(tmp_path: Path) -> None:
    out, files, results = make_page(tmp_path, n_files=2, n_clips=2)
    clip = choose_clips(results, 2)[0]
    folder = f"01-{files[clip.index].stem.replace(' ', '-')}"
    audio, rate = soundfile.read(str(out / "audio" / folder / "opus-6kbps.flac"), dtype="int16")
    expected, _, _, _ = _lowpass(load_reference(files[clip.index], SR), SR)
    assert rate == SR
    np.testing.assert_array_equal(audio, to_pcm16(expected))
    original, _ = soundfile.read(str(out / "audio" / folder / "original.flac"), dtype="int16")
    np.testing.assert_array_equal(original, to_pcm16(load_reference(files[clip.index], SR)))


# -------------------------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli_app(monkeypatch: pytest.MonkeyPatch):
    import typer

    from cli.compare import register as register_compare
    from cli.evaluate import register as register_eval

    api = _fake_api()
    api.MIN_SAMPLE_RATE, api.MAX_SAMPLE_RATE = 8000, 96000
    monkeypatch.setitem(sys.modules, "codec.api", api)
    monkeypatch.setenv("PATH", "/nonexistent")  # no opus/codec2 tools: anchors are skipped
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root."""

    register_eval(app)
    register_compare(app)
    return app


def _invoke(app, args: list[str]):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args)


def test_cli_eval_writes_the_listening_page(tmp_path: Path, cli_app) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(4):
        soundfile.write(str(refs / f"{i}.wav"), speech_like(1.0, SR, seed=i), SR)
    out = tmp_path / "out"
    args = ["eval", str(refs), "--bitrate", "3", "--out", str(out), "--device", "cpu",
            "--listen", "2"]
    result = _invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    page = _parse(out / "index.html")
    assert page.counts["audio"] == 2 * 2  # worst and best, original + diveq 3 kbps
    assert sorted(p.name for p in out.iterdir()) == [
        "audio", "index.html", "rate_quality.png", "results.json", "results.md", "spectrograms"]
    assert json.loads((out / "results.json").read_text())["outputs"][0] == str(out / "results.md")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    html = (out / "index.html").read_text()
    assert "opus skipped" in html and "anchors measured: none" in html

    result = _invoke(cli_app, args)
    assert result.exit_code == UsageError.exit_code and "--force" in result.output
    result = _invoke(cli_app, [*args[:-1], "0", "--force"])
    assert result.exit_code == 0, result.output
    assert _parse(out / "index.html").counts.get("audio", 0) == 0
    assert list((out / "audio").iterdir()) == []  # --force replaced the old clips' folder
    result = _invoke(cli_app, [*args[:-1], "-1", "--force"])
    assert result.exit_code == UsageError.exit_code and "--listen" in result.output


def test_cli_eval_interrupted_leaves_nothing(tmp_path: Path, cli_app,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import INTERRUPTED_EXIT_CODE, app
    from codec.eval import listen

    refs = tmp_path / "refs"
    refs.mkdir()
    soundfile.write(str(refs / "a.wav"), speech_like(1.0, SR), SR)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(listen, "write_spectrogram_png", interrupted)  # Ctrl-C while writing the page
    result = _invoke(app, ["eval", str(refs), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == INTERRUPTED_EXIT_CODE and "interrupted" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs"]


def test_cli_compare_one_file(tmp_path: Path, cli_app) -> None:
    stereo = np.stack([speech_like(1.3, 22050, seed=5), speech_like(1.3, 22050, seed=6)], axis=1)
    src = tmp_path / "my take.flac"
    soundfile.write(str(src), stereo, 22050)
    out = tmp_path / "cmp"
    result = _invoke(cli_app, ["compare", str(src), "--out", str(out), "--bitrate", "1.5,6",
                               "--against", "none", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output
    decoded = sorted(p.relative_to(out).as_posix() for p in (out / "audio").rglob("*.flac"))
    assert decoded == ["audio/01-my-take/diveq-1.5kbps.flac", "audio/01-my-take/diveq-6kbps.flac",
                       "audio/01-my-take/original.flac"]
    html = (out / "index.html").read_text()
    assert "compare: my take.flac" in html and "anchors measured: none (--against none)" in html
    data = json.loads((out / "results.json").read_text())
    assert data["files"] == [str(src)] and len(data["systems"]) == 2
    mono = load_reference(src, SR)
    original, _ = soundfile.read(str(out / "audio" / "01-my-take" / "original.flac"), dtype="int16")
    np.testing.assert_array_equal(original, to_pcm16(mono))


@pytest.mark.parametrize(("make", "code", "message"), [
    (lambda p: None, AudioError.exit_code, "no such file"),
    (lambda p: p.write_bytes(b"RIFF not a wav"), AudioError.exit_code, "not a readable audio"),
    (lambda p: soundfile.write(str(p), np.zeros(4000), 4000), AudioError.exit_code, "outside"),
    (lambda p: soundfile.write(str(p), np.zeros((0, 1)), SR), AudioError.exit_code, "empty"),
])
def test_cli_compare_bad_input(tmp_path: Path, cli_app, make, code: int, message: str) -> None:
    src = tmp_path / "in.wav"
    make(src)
    result = _invoke(cli_app, ["compare", str(src), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_compare_existing_output_needs_force(tmp_path: Path, cli_app) -> None:
    src = tmp_path / "in.wav"
    soundfile.write(str(src), speech_like(1.0, SR), SR)
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ["compare", str(src), "--out", str(out), "--bitrate", "6", "--device", "cpu"]
    result = _invoke(cli_app, args)
    assert result.exit_code == UsageError.exit_code and "--force" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = _invoke(cli_app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and (out / "notes.txt").read_text() == "keep me"


def test_compare_with_the_builtin_model(tmp_path: Path) -> None:
    """The real command (registered in cli.main) with the real default model, in its own process:
    model inference in the test process shifts later in-process training at the bit level (CPU
    kernels), which test_train's SIGKILL test cannot absorb."""
    import subprocess

    src = tmp_path / "speech.wav"
    soundfile.write(str(src), speech_like(1.0, 24000, seed=7), 24000)
    out = tmp_path / "cmp"
    result = subprocess.run([sys.executable, "-m", "cli.main", "compare", str(src), "--out", str(out),
                             "--bitrate", "6", "--against", "none", "--device", "cpu"],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "index.html" in result.stdout
    data = json.loads((out / "results.json").read_text())
    (system,) = data["systems"]
    assert (system["name"], system["kbps"]) == ("diveq", 6.0)
    assert 6.0 < system["real_kbps"] < 9.0  # 6 kbps of codes + the container on a 1 s file
    assert system["mean"]["stoi"] > 0.6  # speech, not noise or silence (0.81 when written)
    decoded, rate = soundfile.read(str(out / "audio" / "01-speech" / "diveq-6kbps.flac"))
    assert rate == SR and decoded.shape == (SR,) and np.abs(decoded).max() > 0.01


# ---------------------------------------------------------------------------------------- browser


def test_page_in_headless_chromium(any_page: Path, tmp_path: Path) -> None:
    """Debian's Chromium opens the page from disk: every player reads its file, every image
    decodes, the console stays clean, and the page is not blank. Fails (never skips) without
    Chromium or playwright: install.sh installs both."""
    from PIL import Image

    from browser import chromium_context

    problems: list[str] = []
    with chromium_context(width=1280, height=900) as context:
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console error: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((any_page / "index.html").resolve().as_uri(), wait_until="load")
        page.wait_for_function(
            "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)",
            timeout=15000)
        audio = page.evaluate("[...document.querySelectorAll('audio')].map("
                              "a => ({src: a.currentSrc, ready: a.readyState, error: a.error && "
                              "a.error.code, duration: a.duration}))")
        images = page.evaluate("[...document.images].map(i => ({src: i.currentSrc, "
                               "complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))")
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)

    counts = _parse(any_page / "index.html").counts
    assert len(audio) == counts["audio"] > 0 and len(images) == counts["img"] > 0
    for a in audio:
        assert a["ready"] >= 1 and a["error"] is None, a
        path = Path(unquote(urlparse(a["src"]).path))
        assert a["duration"] == pytest.approx(soundfile.info(str(path)).duration, abs=0.01), a
    for i in images:
        assert i["complete"] and i["w"] > 0 and i["h"] > 0, i
    assert problems == []
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] > 900 and pixels.std() > 20  # a tall page with something on it
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200  # text, plots, spectrograms
