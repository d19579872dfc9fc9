"""How good a start the shipped offline model is for the causal kind (docs/streaming.md section 7):
PESQ-WB and waveform correlation at 12 stages on the first eval-set files, for the offline model, its
weights copied as they are, kernels kept in time (codec.train.causal_init), that plus an encoder whose
STFT frames are centred as offline (one hop of encoder look-ahead, head look-ahead 2; a probe only,
patched in here), and the causal decoder alone.

    .venv/bin/python scripts/probe_causal_start.py [--files 8]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import glob
import types

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from pesq import pesq

from codec.models.builder import build_codec
from codec.models.causal_encoder import compressed_spectrum
from codec.models.weights import load_model_file
from codec.nn.spectral import analysis_kernel
from codec.train.causal_init import causal_weights


def _score(model: torch.nn.Module, files: list[str]) -> tuple[float, float]:
    ps, cs = [], []
    for f in files:
        x = sf.read(f, dtype="float32")[0]
        with torch.no_grad():
            y = model(torch.from_numpy(x)[None, None], 12).audio[0, 0].numpy()[: len(x)]
        ps.append(pesq(16000, x, y, "wb"))
        cs.append(float(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)))
    return float(np.mean(ps)), float(np.mean(cs))


def _centred_features(self: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """The causal encoder's STFT with frame j centred at j * hop (one hop of look-ahead)."""
    x = F.pad(audio[:, 0].float(), (self.n_fft - 2 * self.hop, self.hop))
    kernel = analysis_kernel(self.n_fft, audio.device)
    return compressed_spectrum(x.unfold(-1, self.n_fft, self.hop), kernel).transpose(1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--eval-dir", default="data/eval_valid")
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted(glob.glob(f"{args.eval_dir}/*.wav"))[: args.files]
    offline = load_model_file("codec/pretrained/default.safetensors").float().eval()
    arms: list[tuple[str, torch.nn.Module]] = [("shipped offline model", offline)]
    for lookahead in (3, 2):
        config = dataclasses.replace(offline.config, causal=True, lookahead=lookahead)
        as_is = build_codec(config).eval()
        as_is.load_state_dict(offline.state_dict())
        kept = build_codec(config).eval()
        kept.load_state_dict(causal_weights(offline, kept, lookahead))
        centred = copy.deepcopy(kept)
        centred.encoder.features = types.MethodType(_centred_features, centred.encoder)  # type: ignore[method-assign]
        arms += [(f"copied as is (lookahead {lookahead})", as_is),
                 (f"kernels kept in time (lookahead {lookahead})", kept),
                 (f"... + encoder frames centred (lookahead {lookahead})", centred)]
        if lookahead == 3:
            decoder_only = copy.deepcopy(offline)
            decoder_only.decoder = kept.decoder
            arms.append(("causal decoder alone", decoder_only))
    for name, model in arms:
        p, c = _score(model, files)
        print(f"{name:48s} PESQ-WB {p:.3f}  correlation {c:.3f}", flush=True)


if __name__ == "__main__":
    main()
