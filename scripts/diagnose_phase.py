"""Where does a model's quality go: spectral magnitude or phase?

For every file in a folder of 16 kHz speech, scores (PESQ-WB, STOI) seven signals built on the
decoder head's own STFT (n_fft = 4 * head hop, Hann, centred):

- ``model``: the codec's output at ``--n-codebooks``
- ``model_mag+ref_phase``: the output's magnitude with the reference's phase (how good the magnitudes are)
- ``ref_mag+model_phase``: the reference's magnitude with the output's phase (how bad the phase is)
- ``model_mag+griffin_lim``: the output's magnitude with phase from 32 Griffin-Lim iterations
- ``model_mag+gl_from_model``: the same, 16 iterations starting from the output's own phase
- ``ref_mag+griffin_lim``: the reference's magnitude with phase from 32 Griffin-Lim iterations
- ``ref_mag+random_phase``: the reference's magnitude with uniformly random phase

    .venv/bin/python scripts/diagnose_phase.py data/eval_valid [--model M.safetensors] [--n-codebooks 12]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from codec.api import load_model
from codec.eval import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n-codebooks", type=int, default=None)
    parser.add_argument("--max-files", type=int, default=24)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.model, device="cpu")
    sr = model.config.sample_rate
    n = args.n_codebooks or model.config.n_codebooks
    hop = model.config.head_hop
    n_fft = 4 * hop
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def stft(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, n_fft, hop, n_fft, window, center=True, return_complex=True)

    def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, n_fft, hop, n_fft, window, center=True, length=length)

    def griffin_lim(mag: torch.Tensor, length: int, iters: int = 32,
                    phase: torch.Tensor | None = None) -> torch.Tensor:
        if phase is None:
            phase = torch.rand(mag.shape, dtype=torch.float64) * 2 * torch.pi
        for _ in range(iters):
            x = istft(torch.polar(mag, phase), length)
            phase = stft(x).angle()
        return istft(torch.polar(mag, phase), length)

    rows: dict[str, list[tuple[float, float]]] = {}
    files = sorted(p for p in args.folder.iterdir() if p.suffix in (".wav", ".flac"))[: args.max_files]
    for path in files:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != sr:
            raise SystemExit(f"{path}: {rate} Hz, this diagnosis needs {sr} Hz files")
        x = torch.from_numpy(audio[:, 0].copy())
        x = x * (0.1 / x.pow(2).mean().sqrt().clamp(min=1e-5))  # the codec's loudness normalisation
        with torch.inference_mode():
            y = model.decode(model.encode(x[None, None], n_codebooks=n), length=x.shape[-1])[0, 0]
        ref, out = x.double(), y.double()
        s_ref, s_out = stft(ref), stft(out)
        length = ref.shape[-1]
        signals = {
            "model": out,
            "model_mag+ref_phase": istft(torch.polar(s_out.abs(), s_ref.angle()), length),
            "ref_mag+model_phase": istft(torch.polar(s_ref.abs(), s_out.angle()), length),
            "model_mag+griffin_lim": griffin_lim(s_out.abs(), length),
            "model_mag+gl_from_model": griffin_lim(s_out.abs(), length, 16, s_out.angle()),
            "ref_mag+griffin_lim": griffin_lim(s_ref.abs(), length),
            "ref_mag+random_phase": istft(torch.polar(
                s_ref.abs(), torch.rand(s_ref.shape, dtype=torch.float64) * 2 * torch.pi), length),
        }
        r = ref.numpy()
        for name, sig in signals.items():
            d = sig.numpy()
            rows.setdefault(name, []).append((metrics.pesq_wb(r, d, sr), metrics.stoi(r, d, sr)))
    print(f"{len(files)} files, {n} stages, head STFT n_fft {n_fft} hop {hop}")
    print(f"{'signal':24s} {'PESQ-WB':>8s} {'STOI':>6s}")
    for name, values in rows.items():
        v = np.asarray(values)
        print(f"{name:24s} {np.nanmean(v[:, 0]):8.3f} {np.nanmean(v[:, 1]):6.3f}")


if __name__ == "__main__":
    main()
