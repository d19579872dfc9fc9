"""DiVeQ / SF-DiVeQ stages and the residual quantizer: values, gradients, bookkeeping, DDP."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from codec.config import QuantizerConfig
from codec.models.builder import build_quantizer
from codec.quantize import DiVeQStage, SFDiVeQStage
from codec.quantize.functional import diveq, nearest_code, segment_points, sf_diveq


def test_nearest_code_matches_brute_force():
    z, cb = torch.randn(200, 8), torch.randn(64, 8)
    expected = torch.cdist(z, cb).argmin(dim=1)
    assert torch.equal(nearest_code(z, cb), expected)
    cos = torch.nn.functional.normalize
    assert torch.equal(nearest_code(z, cb, cosine=True), (cos(z, dim=1) @ cos(cb, dim=1).t()).argmax(1))


def test_diveq_forward_is_the_codeword_and_gradients_follow_the_identities():
    z = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    out = diveq(z, c, noise_std=0.0)
    torch.testing.assert_close(out, c.detach())
    g = torch.randn(16, 8, dtype=torch.float64)
    (out * g).sum().backward()
    e = (c - z).detach()
    e = e / e.norm(dim=1, keepdim=True)
    proj = (e * g).sum(dim=1, keepdim=True) * e
    torch.testing.assert_close(z.grad, g - proj)  # dL/dz = g - e(e.g)
    torch.testing.assert_close(c.grad, proj)  # dL/dc = e(e.g)


def test_diveq_with_noise_reaches_encoder_and_codebook():
    stage = DiVeQStage(32, 4, noise_std=1e-3).train()
    z = torch.randn(64, 4, requires_grad=True)
    out, point, idx = stage(z)
    torch.testing.assert_close(point, stage.codebook[idx])
    assert torch.allclose(out, stage.codebook[idx], atol=2e-2)  # forward ~ codeword
    out.pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert stage.codebook.grad is not None and stage.codebook.grad[idx].abs().sum() > 0


def test_sf_diveq_forward_is_the_dithered_point():
    z = torch.randn(10, 4, dtype=torch.float64)
    start, end = torch.randn(10, 4, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    lam = torch.rand(10, dtype=torch.float64)
    out = sf_diveq(z, start, end, lam, noise_std=0.0)
    torch.testing.assert_close(out, (1 - lam[:, None]) * start + lam[:, None] * end)
    curve = torch.randn(5, 4)
    pts = segment_points(curve, torch.tensor([0.0, 1.0, 0.5, 0.25]))
    torch.testing.assert_close(pts[0], curve[0])
    torch.testing.assert_close(pts[1], curve[2])
    torch.testing.assert_close(pts[2], (curve[2] + curve[3]) / 2)


def test_sf_stage_training_output_lies_on_its_segment_and_gradients_flow():
    stage = SFDiVeQStage(16, 3, noise_std=0.0).train()
    z = torch.randn(100, 3, requires_grad=True)
    out, point, idx = stage(z)
    torch.testing.assert_close(out.detach(), point.detach(), atol=1e-5, rtol=0)
    a, b = stage.codebook[idx].detach(), stage.codebook[idx + 1].detach()
    lam = ((out.detach() - a) * (b - a)).sum(1) / (b - a).pow(2).sum(1)
    assert bool(((lam >= -1e-4) & (lam <= 1 + 1e-4)).all())
    torch.testing.assert_close(out.detach(), a + lam[:, None] * (b - a), atol=1e-4, rtol=0)
    out.sum().backward()
    assert z.grad.abs().sum() > 0 and stage.codebook.grad.abs().sum() > 0


def test_sf_curve_is_initialised_from_contiguous_chunks_of_the_first_frames():
    stage = SFDiVeQStage(4, 2).train()
    frames = torch.randn(40, 2)
    stage(frames)
    assert bool(stage.initialized)
    expected = torch.stack([c.mean(0) for c in torch.tensor_split(frames, 5)])
    torch.testing.assert_close(stage.codebook.data, expected)


@pytest.mark.parametrize("kind", ["diveq", "sfdiveq-midpoint", "sfdiveq-vertex"])
def test_inference_code_round_trip_is_exact(kind):
    if kind == "diveq":
        stage = DiVeQStage(32, 4).train()
    else:
        stage = SFDiVeQStage(32, 4, inference=kind.split("-")[1]).train()
    stage(torch.randn(256, 4))  # data-driven initialisation
    stage.eval()
    z = torch.randn(300, 4)
    out, _, idx = stage(z)
    assert idx.max() < 32 and len(idx.unique()) > 8
    assert torch.equal(stage.decode(stage.encode(z)), out)
    # the whole table (what the ONNX graphs fold to a constant) is decode of every index
    assert torch.equal(stage.codewords(), stage.decode(torch.arange(32)))


def test_dead_codes_are_replaced_in_training_only():
    stage = DiVeQStage(16, 2, replace_interval=2, replace_source="frames").train()
    stage(torch.randn(64, 2))  # init from data
    with torch.no_grad():
        stage.codebook.data[8:] = 1e3  # far away: dead
    far = stage.codebook.data[8:].clone()
    stage.eval()
    for _ in range(5):
        stage(torch.randn(64, 2))
    assert torch.equal(stage.codebook.data[8:], far), "eval must never replace codes"
    assert int(stage.step) == 1
    stage.train()
    for _ in range(4):  # one full interval with the far codes unused, then a replacement
        stage(torch.randn(64, 2))
    assert stage.codebook.data[8:].abs().max() < 10, "dead codes restarted at recent frames"


def test_codeword_source_replacement_copies_used_codes():
    stage = DiVeQStage(8, 2, replace_interval=1, replace_source="codewords").train()
    stage(torch.randn(32, 2))
    with torch.no_grad():
        stage.codebook.data[4:] = 1e3
    stage(torch.zeros(32, 2) + stage.codebook.data[0])
    stage(torch.zeros(32, 2))
    assert stage.codebook.data[4:].abs().max() < 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(100 + rank)  # different data and randomness on each rank
    q = build_quantizer(4, QuantizerConfig(n_codebooks=2, codebook_size=16, codebook_dim=4,
                                             replace_interval=2, dropout=0.0)).train()
    for _ in range(7):
        q(torch.randn(2, 4, 30) * (rank + 1))
    torch.save({k: v for k, v in q.state_dict().items() if "codebook" in k}, f"{out_dir}/rank{rank}.pt")
    dist.barrier()  # nobody tears down while a peer is still talking
    dist.destroy_process_group()


def test_two_process_gloo_keeps_codebooks_identical(tmp_path):
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and len(a) == 2
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kind,reparam", [("diveq", "per_stage"), ("diveq", "on_sum"),
                                          ("sfdiveq", "per_stage"), ("sfdiveq", "on_sum"),
                                          ("ste", "per_stage")])
def test_residual_quantizer_interface(kind, reparam):
    cfg = QuantizerConfig(kind=kind, reparam=reparam, n_codebooks=4, codebook_size=32,
                          codebook_dim=4, dropout=1.0)
    q = build_quantizer(8, cfg).train()
    latent = torch.randn(16, 8, 20, requires_grad=True)
    out = q(latent)
    assert out.quantized.shape == latent.shape and out.codes.shape == (16, 4, 20)
    out.quantized.pow(2).mean().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    if kind != "ste":
        assert len(set(out.n_codebooks.tolist())) > 1, "quantizer dropout varies the stages"
    q.eval()
    for n in (1, 2, 4):
        a, b = q(latent.detach(), n), q(latent.detach(), n)
        assert torch.equal(a.quantized, b.quantized), "eval is deterministic"
        assert a.codes.shape == (16, n, 20)
        torch.testing.assert_close(q.decode(q.encode(latent.detach(), n)), a.quantized)
        if kind != "ste":  # the table lookup of the ONNX graphs decodes the same
            codes = q.encode(latent.detach(), n)
            torch.testing.assert_close(q.decode_by_tables(codes), q.decode(codes))
    stats = q.usage_stats()
    assert len(stats) == 4 and all(0 < s.usage <= 1 for s in stats)


@pytest.mark.parametrize("codebook_dim", [8, 3])  # full latent, and factorised (orthonormal projections)
def test_residual_norm_never_grows_stage_by_stage(codebook_dim):
    q = build_quantizer(8, QuantizerConfig(n_codebooks=6, codebook_size=64,
                                             codebook_dim=codebook_dim)).train()
    latent = torch.randn(8, 8, 50)
    q(latent)  # codebooks initialised from these residuals
    q.eval()
    codes = q.encode(latent)
    norms = [(latent - q.decode(codes[:, :n])).norm() for n in range(1, 7)]
    assert norms[0] < latent.norm()
    assert all(b <= a + 1e-4 for a, b in zip(norms, norms[1:])), norms


def test_bad_n_codebooks_is_rejected():
    q = build_quantizer(8, QuantizerConfig(n_codebooks=2, codebook_size=8, codebook_dim=8)).eval()
    with pytest.raises(ValueError):
        q(torch.randn(1, 8, 4), 3)
    with pytest.raises(ValueError):
        q.decode(torch.zeros(1, 3, 4, dtype=torch.long))


