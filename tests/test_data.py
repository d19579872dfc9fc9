"""Tests of codec.data: the training dataset, validation clips, test signal and corpus builder."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.data import corpus
from codec.data.corpus import MANIFEST_COLUMNS, SynthSpec, assign_splits, build_corpus
from codec.data.dataset import AudioDataset, ValidationSet, normalise_loudness, synth_speechlike
from codec.errors import TrainingError

SR = 16000


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(4):
        sf.write(root / ("a" if i < 2 else "b") / f"{i}.wav", synth_speechlike(1.5, SR, seed=i), SR)
    return root


def _manifest(tmp_path: Path, folder: Path) -> Path:
    rows = []
    for i, path in enumerate(sorted(folder.rglob("*.wav"))):
        rows.append({"file": path.relative_to(tmp_path).as_posix(), "source": "s", "language": "en",
                     "speaker": f"spk{i % 2}", "duration": "1.5", "licence": "x",
                     "split": "valid" if i % 2 else "train"})
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_synth_speechlike_is_deterministic_and_bounded() -> None:
    a = synth_speechlike(2.0, SR, seed=3)
    assert a.dtype == np.float32 and a.shape == (2 * SR,)
    np.testing.assert_array_equal(a, synth_speechlike(2.0, SR, seed=3))
    assert not np.array_equal(a, synth_speechlike(2.0, SR, seed=4))
    assert np.isfinite(a).all() and abs(np.max(np.abs(a)) - 0.5) < 1e-6
    # speech-like: most energy below 4 kHz, but not a pure tone
    spec = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(len(a), 1 / SR)
    assert spec[freqs < 4000].sum() > 0.9 * spec.sum()
    assert (spec > 0.01 * spec.max()).sum() > 50


def test_dataset_shapes_and_determinism(folder: Path) -> None:
    ds = AudioDataset([folder], SR, 4000, split=None, seed=1)
    assert len(ds) == 4 and abs(ds.total_seconds - 6.0) < 1e-6
    items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (1, 4000) and x.dtype == torch.float32 for x in items)
    again = AudioDataset([folder], SR, 4000, split=None, seed=1)
    assert all(torch.equal(x, again[i]) for i, x in enumerate(items))
    other = AudioDataset([folder], SR, 4000, split=None, seed=2)
    assert not all(torch.equal(x, other[i]) for i, x in enumerate(items))
    ds.set_epoch(1)
    assert not all(torch.equal(x, ds[i]) for i, x in enumerate(items))
    with pytest.raises(IndexError):
        ds[4]


def test_dataset_with_dataloader_workers_matches_indexing(folder: Path) -> None:
    ds = AudioDataset([folder], SR, 2000, split=None, seed=5, epoch_size=6)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = torch.cat(list(loader))
    assert batches.shape == (6, 1, 2000)
    assert torch.equal(batches, torch.stack([ds[i] for i in range(6)]))


def test_loudness_normalisation(folder: Path) -> None:
    ds = AudioDataset([folder], SR, 8000, split=None, target_rms_db=-30.0, gain_jitter_db=0.0)
    for i in range(len(ds)):
        assert abs(_rms_db(ds[i].numpy()) - (-30.0)) < 0.05
    jittered = AudioDataset([folder], SR, 8000, split=None, target_rms_db=-30.0, gain_jitter_db=6.0)
    levels = [_rms_db(jittered[i].numpy()) for i in range(len(jittered))]
    assert all(-36.05 < lv < -23.95 for lv in levels) and np.std(levels) > 0.1
    # a target that would push the peak past 1.0 is limited instead
    loud = normalise_loudness(synth_speechlike(1.0, SR), target_db=0.0)
    assert np.max(np.abs(loud)) <= 1.0


def test_manifest_split_filtering(tmp_path: Path, folder: Path) -> None:
    manifest = _manifest(tmp_path, folder)
    train = AudioDataset([manifest], SR, 1000, split="train")
    valid = AudioDataset([manifest], SR, 1000, split="valid")
    both = AudioDataset([manifest], SR, 1000, split=None)
    assert len(train.paths) == 2 and len(valid.paths) == 2 and len(both.paths) == 4
    assert not set(train.paths) & set(valid.paths)
    assert all(Path(p).exists() for p in both.paths)
    val = ValidationSet([manifest], SR, seconds=1.0, max_files=5)
    assert len(val) == 2 and all(c.shape == (1, SR) for c in val._clips)
    assert torch.equal(val[0], ValidationSet([manifest], SR, seconds=1.0, max_files=5)[0])


def test_resamples_44k_stereo_and_pads_short_files(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1), 44100)
    sf.write(tmp_path / "short.flac", 0.3 * np.sin(2 * np.pi * 500 * t[:2205]), 44100)
    ds = AudioDataset([tmp_path / "tone.wav"], SR, 8000, split=None, gain_jitter_db=0.0)
    x = ds[0][0].numpy()
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.fft.rfftfreq(len(x), 1 / SR)[spec.argmax()] - 1000) < 5
    short = AudioDataset([tmp_path / "short.flac"], SR, SR, split=None)[0][0].numpy()
    assert np.abs(short[:700]).max() > 0.01 and np.all(short[820:] == 0)  # 0.05 s -> 800 samples


def test_empty_sources_raise_training_error(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio")
    with pytest.raises(TrainingError, match="no audio"):
        AudioDataset([tmp_path / "empty"], SR, 1000)
    with pytest.raises(TrainingError, match="does not exist"):
        AudioDataset([tmp_path / "missing"], SR, 1000)
    with pytest.raises(TrainingError, match="no audio"):
        AudioDataset([_manifest(tmp_path, folder)], SR, 1000, split="test")
    with pytest.raises(TrainingError, match="no audio"):
        ValidationSet([], SR)


def test_assign_splits_holds_out_whole_small_speakers() -> None:
    rows = [{"source": "big", "speaker": s, "duration": str(d)}
            for s, d in [("main1", 1000), ("main2", 1000)] + [(f"minor{i}", 10) for i in range(30)]
            for _ in range(3)]
    rows += [{"source": "solo", "speaker": "one", "duration": "5"}]
    assign_splits(rows, valid_fraction=0.05)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["speaker"], set()).add(row["split"])
    assert all(len(v) == 1 for v in split_of.values())
    held = {s for s, v in split_of.items() if v == {"valid"}}
    assert len(held) == 2 and held <= {f"minor{i}" for i in range(30)}
    assert split_of["one"] == {"train"}


def test_fetch_package_skips_without_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="skipping"):
        assert corpus.fetch_package("klettres-data", tmp_path) is None


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_build_corpus_synthesis_only(tmp_path: Path) -> None:
    spec = SynthSpec(espeak_voices=("en-us",), espeak_variants=("", "f3", "m3"),
                     espeak_utterances=2,
                     flite_voices=("slt", "kal") if shutil.which("flite") else (),
                     flite_utterances=1,
                     sentences=("The cat sat on the mat.", "Please call me back tomorrow.",
                                "Seven green boats sailed home."))
    manifest = build_corpus(tmp_path / "c", jobs=2, progress=False, real=False, synth_spec=spec)
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        rows = list(reader)
    n_flite = 2 if spec.flite_voices else 0
    assert len(rows) == 6 + n_flite
    assert {r["speaker"] for r in rows if r["source"] == "espeak"} == {
        "espeak-en-us", "espeak-en-us+f3", "espeak-en-us+m3"}
    for row in rows:
        info = sf.info(str(manifest.parent / row["file"]))
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - float(row["duration"])) < 1e-3 and info.duration > 0.5
    for source in {r["source"] for r in rows}:
        splits = {r["speaker"]: r["split"] for r in rows if r["source"] == source}
        assert "valid" in splits.values() and "train" in splits.values()
    mtimes = {p: p.stat().st_mtime_ns for p in manifest.parent.rglob("*.wav")}
    again = build_corpus(tmp_path / "c", jobs=1, progress=False, real=False, synth_spec=spec)
    assert again.read_text() == manifest.read_text()
    assert {p: p.stat().st_mtime_ns for p in manifest.parent.rglob("*.wav")} == mtimes


def test_cli_build_corpus_rejects_bad_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    assert "build-corpus" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["build-corpus", str(tmp_path / "c"), "--sample-rate", "100"])
    assert result.exit_code == 2 and not (tmp_path / "c").exists()
    result = runner.invoke(app, ["build-corpus", str(tmp_path / "c"), "--jobs", "0"])
    assert result.exit_code == 2


def test_augmentation_is_deterministic_and_off_by_default(tmp_path: Path) -> None:
    """A disabled Augmentation leaves crops bit-identical; an enabled one changes them, the same way
    for the same (seed, index), keeps the crop length, and every setting is validated."""
    import soundfile as sf

    from codec.data.augment import Augmentation
    from codec.data.dataset import AudioDataset
    from codec.errors import ConfigError

    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(str(tmp_path / f"{i}.wav"), (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    plain = AudioDataset([tmp_path], 16000, 4000, split=None, seed=5)
    off = AudioDataset([tmp_path], 16000, 4000, split=None, seed=5, augment=Augmentation())
    on = Augmentation(speed=0.1, eq_db=6.0, band_limit=1.0, noise=1.0, reverb=1.0)
    a = AudioDataset([tmp_path], 16000, 4000, split=None, seed=5, augment=on)
    b = AudioDataset([tmp_path], 16000, 4000, split=None, seed=5, augment=on)
    for i in range(3):
        assert torch.equal(plain[i], off[i])
        assert a[i].shape == plain[i].shape == (1, 4000)
        assert torch.equal(a[i], b[i]) and not torch.allclose(a[i], plain[i])
        assert torch.isfinite(a[i]).all() and float(a[i].abs().max()) < 1.0
    for bad in (dict(speed=0.6), dict(eq_db=-1.0), dict(noise=1.5), dict(noise_snr_db=(30.0, 10.0)),
                dict(reverb_rt60=(0.0, 0.2))):
        with pytest.raises(ConfigError, match="data.augment"):
            Augmentation(**bad)


def test_augmentation_band_limit_and_speed_do_what_they_say() -> None:
    from codec.data.augment import Augmentation

    x = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    limited = Augmentation(band_limit=1.0).apply(x, 16000, np.random.default_rng(2))
    spec = np.abs(np.fft.rfft(limited)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 16000)
    assert spec[freqs > 7600].mean() < 1e-2 * spec[freqs < 3000].mean()  # cut-off in 3.4-7.5 kHz
    factors = [Augmentation(speed=0.1).speed_factor(np.random.default_rng(s)) for s in range(50)]
    assert 0.9 <= min(factors) < 0.95 and 1.05 < max(factors) <= 1.1
    assert Augmentation().speed_factor(np.random.default_rng(0)) == 1.0


def test_validation_set_by_corpus_source_takes_each_source_alike(tmp_path: Path) -> None:
    """corpus_sources keeps those sources' rows and the same number of clips from each, one speaker
    after another (the seen / held-out gap sets)."""
    rows = []
    for source, n_speakers in (("big", 6), ("small", 2), ("tts", 3)):
        for k in range(n_speakers):
            path = tmp_path / source / f"{k}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, synth_speechlike(1.2, SR, seed=k), SR)
            rows.append({"file": path.relative_to(tmp_path).as_posix(), "source": source, "language": "en",
                         "speaker": f"spk{k}", "duration": "1.2", "licence": "x", "split": "train"})
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    val = ValidationSet([manifest], SR, seconds=1.0, max_files=4, split="train",
                        corpus_sources=("big", "small"))
    assert [Path(n).parent.name for n in val.names] == ["big", "big", "small", "small"]
    assert len({Path(n).name for n in val.names[:2]}) == 2  # two speakers of "big", not one twice
    assert len(ValidationSet([manifest], SR, max_files=4, split="train")) == 4  # unfiltered: as before
