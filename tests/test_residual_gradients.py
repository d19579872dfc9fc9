"""What gradient each part of the residual quantizer gets (docs/quantizer-gradients.md).

The default 12 x 1024, 16-d configuration, codebooks initialised from data: the encoder must get
DiVeQ's gradient (not a straight-through one), every stage's codebook a gradient of comparable size,
and the codes picked in training must be the codes eval picks.
"""

from __future__ import annotations

import pytest
import torch

from codec.config import QuantizerConfig
from codec.models.builder import build_quantizer
from codec.quantize import ResidualQuantizer
from codec.quantize.functional import diveq, nearest_code

D, K, SIZE = 16, 12, 1024


def _initialised(reparam: str, noise_std: float = 1e-3) -> tuple[ResidualQuantizer, torch.Tensor]:
    torch.manual_seed(0)
    q = build_quantizer(D, QuantizerConfig(n_codebooks=K, codebook_size=SIZE, codebook_dim=D,
                                             reparam=reparam, noise_std=noise_std, dropout=0.0,
                                             replace_interval=0)).train()
    latent = torch.randn(16, D, 256)  # 4096 frames
    q(latent)  # data initialisation, stage by stage
    return q, torch.randn(8, D, 128)


def _gradients(q: ResidualQuantizer, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    latent = latent.clone().requires_grad_(True)
    out = q(latent)
    g = torch.randn_like(out.quantized)
    q.zero_grad()
    (out.quantized * g).sum().backward()
    codebook_norms = [float(stage.codebook.grad.norm()) for stage in q.stages]
    return latent.grad, g, codebook_norms


@pytest.mark.parametrize("reparam", ["on_sum", "per_stage"])
def test_encoder_gets_diveqs_gradient_not_a_straight_through_one(reparam):
    q, latent = _initialised(reparam)
    grad, g, _ = _gradients(q, latent)
    relative = float((grad - g).norm() / g.norm())
    assert relative >= 0.1, relative  # straight-through would be ~0
    # exactly g - (g.u)u with u the direction of the total error (noise-free to compare exactly)
    q_exact, _ = _initialised(reparam, noise_std=0.0)
    latent = latent.clone().requires_grad_(True)
    out = q_exact(latent)
    (out.quantized * g).sum().backward()
    x = latent.detach().transpose(1, 2).reshape(-1, D)
    err = out.quantized.detach().transpose(1, 2).reshape(-1, D) - x
    u = err / err.norm(dim=1, keepdim=True)
    gr = g.transpose(1, 2).reshape(-1, D)
    expected = gr - (gr * u).sum(1, keepdim=True) * u
    torch.testing.assert_close(latent.grad.transpose(1, 2).reshape(-1, D), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("reparam", ["on_sum", "per_stage"])
def test_every_stage_codebook_gets_a_gradient_of_comparable_size(reparam):
    q, latent = _initialised(reparam)
    _, _, norms = _gradients(q, latent)
    assert min(norms) > 0
    assert max(norms[0], norms[-1]) / min(norms[0], norms[-1]) < 10, norms


@pytest.mark.parametrize("reparam", ["on_sum", "per_stage"])
def test_training_codes_equal_eval_codes_with_noise(reparam):
    q, latent = _initialised(reparam, noise_std=1e-3)
    train_codes = q(latent).codes
    q.eval()
    assert torch.equal(train_codes, q.encode(latent))


def test_keeping_reparameterised_outputs_in_the_residual_telescopes_to_straight_through():
    """Why the quantizer subtracts hard codes: DiVeQ per stage on a residual that keeps each stage's
    reparameterised output sums to x + ||r_K|| sg[u], so the encoder gets ~ the identity."""
    q, latent = _initialised("on_sum", noise_std=0.0)
    x = latent.transpose(1, 2).reshape(-1, D).clone().requires_grad_(True)
    residual, total = x, torch.zeros_like(x)
    for stage in q.stages:
        code = stage.codebook[nearest_code(residual, stage.codebook)]
        out = diveq(residual, code, 0.0)
        total = total + out
        residual = residual - out  # keeps the reparameterised output: telescopes
    g = torch.randn_like(total)
    (total * g).sum().backward()
    assert float((x.grad - g).norm() / g.norm()) < 0.02


@pytest.mark.parametrize("kind", ["diveq", "sfdiveq"])
def test_warmup_initialises_every_stage_from_the_residual_earlier_stages_leave(kind):
    torch.manual_seed(0)
    q = build_quantizer(D, QuantizerConfig(kind=kind, n_codebooks=4, codebook_size=64, codebook_dim=D,
                                             warmup_steps=3, dropout=0.0)).train()
    for _ in range(3):
        latent = torch.randn(8, D, 64)
        out = q(latent)
        torch.testing.assert_close(out.quantized, latent)  # unquantized during the warm-up
    assert not q.initialized
    q(torch.randn(8, D, 64))
    assert q.initialized
    norms = [float(stage.inference_codebook().norm(dim=1).mean()) if kind == "sfdiveq"
             else float(stage.codebook.norm(dim=1).mean()) for stage in q.stages]
    assert min(norms) > 0.1, norms  # no stage is a curve of zeros
    q.eval()
    codes = q.encode(torch.randn(16, D, 128))
    for k in range(4):
        used = len(codes[:, k].unique()) / 64
        assert used > 0.5, (k, used)


def test_ste_restarts_initialise_from_data_and_restart_dead_codes():
    torch.manual_seed(0)
    cfg = QuantizerConfig(kind="ste", n_codebooks=3, codebook_size=64, codebook_dim=4, dropout=0.0,
                          ste_restarts=True, replace_interval=2)
    q = build_quantizer(16, cfg).train()
    latent = torch.randn(4, 16, 100)
    q(latent)
    vq0 = q.rvq.quantizers[0]
    z_e = vq0.in_proj(latent).transpose(1, 2).reshape(-1, 4)
    rows = {tuple(r) for r in z_e.detach().round(decimals=5).tolist()}
    picked = [tuple(r) for r in vq0.codebook.weight.detach().round(decimals=5).tolist()]
    assert sum(r in rows for r in picked) == 64, "codebook 0 = frames of the first batch"
    with torch.no_grad():
        vq0.codebook.weight[32:] = -vq0.codebook.weight[32:].abs().mean() * 100  # one far direction
    for _ in range(4):  # steps 1-4: a full interval (2-3) without the far codes, restart at step 4
        q(latent)
    q.eval()
    used = len(q.encode(latent)[:, 0].unique())
    assert used > 40, used
