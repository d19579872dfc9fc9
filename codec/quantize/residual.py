"""Residual vector quantizer whose every stage is DiVeQ or SF-DiVeQ.

Each stage k projects the residual r_k [D] onto a learned ``codebook_dim``-dimensional subspace with
a matrix P_k whose rows are orthonormal, quantizes z = P_k r_k there, and maps back with P_k^T:

    r_{k+1} = r_k - P_k^T q_k,   so   ||r_{k+1}||^2 = ||(I - P_k^T P_k) r_k||^2 + ||P_k r_k - q_k||^2.

The residual norm therefore cannot grow when the chosen code is nearer to z than the origin is,
whatever the encoder does: with codebooks initialised from data this makes every stage refine.
(DAC's free in/out projections give no such guarantee once the commitment loss is gone.)

With ``codebook_dim == D`` (the default) there is no projection at all: P_k would only rotate the
codebook. With ``codebook_dim < D`` (DAC-style factorised codes) each stage sees a subspace; measured
here (scripts/experiment_collapse.py), the encoder then moves the latent into the part no stage sees
(four 4-d stages on a 32-d latent captured ~1 % of its energy after 300 steps), so factorised codes
are an option, not the default.

Reparameterisation (derivation and measurements: docs/quantizer-gradients.md). Stage inputs are the
residuals the *hard* codes leave (r_{k+1} = r_k - sg[c_k]), so training picks exactly the codes eval
picks; the decoder's input is forward-equal to the sum of the codes, and gradients are:

- ``on_sum`` (default, the official Residual DiVeQ): x + ||S - x|| sg[(S - x + n)/||S - x + n||] with
  S = sum of the stages' points. The encoder gets g - (g.u)u and every stage's codebook (g.u)u, u the
  direction of the total quantization error.
- ``per_stage``: the encoder term is the same but with S detached, and each stage adds
  DiVeQ(sg[r_k], c_k) - sg[DiVeQ(sg[r_k], c_k)] (value 0): stage k's codebook gets DiVeQ's gradient
  (g.u_k)u_k along its *own* error direction u_k.

(Applying DiVeQ to every stage of a residual that keeps the reparameterised outputs, which this
code did before, telescopes: the sum becomes x + ||r_K|| sg[u_{K-1}], a straight-through estimator
for the encoder with codebook gradients shrinking stage by stage towards the first.)

Warm-up (``warmup_steps``): the quantizer passes the latent through unquantized while it keeps recent
latent frames; then stage k is initialised from the residual the already initialised stages 0..k-1
leave on those frames. With ``warmup_steps = 0`` the stages initialise the same way on the first
training batch. Quantizer dropout: in training a ``dropout`` fraction of the batch uses a random
number of stages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import cast

import torch
from torch import nn

from .base import QuantizerOutput, StageUsage
from .diveq import DiVeQStage
from .functional import directional_step
from .sfdiveq import SFDiVeQStage
from .stage import CodebookStage

WARMUP_FRAMES = 4096  # latent frames kept during the warm-up for initialising the stages


class ResidualQuantizer(nn.Module):
    """DiVeQ / SF-DiVeQ residual vector quantizer (``codec.models.builder.build_quantizer`` makes one from a
    ``QuantizerConfig``, whose docstring explains each setting).

    Args:
        input_dim: D, the latent dimension.
        n_codebooks, codebook_size, codebook_dim: K stages of ``codebook_size`` codes each, quantizing
            in ``codebook_dim`` dimensions (<= D).
        kind: ``diveq`` or ``sfdiveq`` (every stage). noise_std: the directional noise's deviation.
        reparam: ``on_sum`` or ``per_stage``. lookup: ``euclidean`` or ``cosine``.
        dropout: fraction of a training batch that uses a random number of stages.
        replace_interval, dead_min_count, replace_source: DiVeQ's dead-code restarts.
        warmup_steps: steps that pass the latent through before the stages initialise.
        sf_inference: SF-DiVeQ's transmitted code, ``midpoint`` or ``vertex``.
    """

    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int, *,
                 kind: str, noise_std: float, reparam: str, lookup: str, dropout: float,
                 replace_interval: int, dead_min_count: int, replace_source: str, warmup_steps: int,
                 sf_inference: str) -> None:
        super().__init__()
        if kind not in ("diveq", "sfdiveq"):
            raise ValueError(f"ResidualQuantizer handles diveq/sfdiveq, not {kind!r}")
        if codebook_dim > input_dim:
            raise ValueError(f"codebook_dim {codebook_dim} exceeds the latent dim {input_dim}")
        self.input_dim = input_dim
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.noise_std = noise_std
        self.per_stage = reparam == "per_stage"
        self.dropout = dropout
        self.warmup_steps = warmup_steps
        if codebook_dim < input_dim:  # orthonormalised by QR at every use (cheap: [D, d])
            self.projection_weight: nn.Parameter | None = nn.Parameter(
                torch.randn(n_codebooks, codebook_dim, input_dim) / input_dim ** 0.5)
        else:
            self.register_parameter("projection_weight", None)
        cosine = lookup == "cosine"
        stages: list[nn.Module] = []
        for _ in range(n_codebooks):
            if kind == "diveq":
                stages.append(DiVeQStage(codebook_size, codebook_dim, noise_std, cosine,
                                         replace_interval, dead_min_count, replace_source))
            else:
                stages.append(SFDiVeQStage(codebook_size, codebook_dim, noise_std, cosine, sf_inference))
        self.stages = nn.ModuleList(stages)
        self._warmup_frames: list[torch.Tensor] = []  # recent latent rows during the warm-up
        self._fixed_projections: torch.Tensor | None = None  # set by fixed_projections()

    # ---- helpers ------------------------------------------------------------------------------
    def _stages(self) -> list[CodebookStage]:
        """The stages (a typed view of ``self.stages``)."""
        return cast(list[CodebookStage], list(self.stages))

    def _check_n(self, n_codebooks: int | None) -> int:
        n = self.n_codebooks if n_codebooks is None else int(n_codebooks)
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"n_codebooks must be in 1..{self.n_codebooks}, got {n}")
        return n

    def projections(self) -> torch.Tensor | None:
        """[K, codebook_dim, D] stage projections with orthonormal rows, None when there are none."""
        if self.projection_weight is None:
            return None
        if self._fixed_projections is not None:
            return self._fixed_projections
        q, r = torch.linalg.qr(self.projection_weight.transpose(1, 2))  # [K, D, d], [K, d, d]
        diag = torch.diagonal(r, dim1=-2, dim2=-1)
        sign = torch.sign(diag) + (diag == 0)
        return (q * sign[:, None, :]).transpose(1, 2)

    @contextlib.contextmanager
    def fixed_projections(self) -> Iterator[None]:
        """Within: the projections are computed once, as constants (same values; an ONNX export
        cannot trace the QR decomposition)."""
        with torch.no_grad():
            fixed = self.projections()
        self._fixed_projections = None if fixed is None else fixed.detach().clone()
        try:
            yield
        finally:
            self._fixed_projections = None

    def _stage_projections(self) -> list[torch.Tensor | None]:
        """One [codebook_dim, D] projection per stage (None = the stage sees the whole latent)."""
        projections = self.projections()
        return [None] * self.n_codebooks if projections is None else list(projections.unbind(0))

    @staticmethod
    def _down(x: torch.Tensor, P: torch.Tensor | None) -> torch.Tensor:
        return x if P is None else x @ P.t()

    @staticmethod
    def _up(z: torch.Tensor, P: torch.Tensor | None) -> torch.Tensor:
        return z if P is None else z @ P

    def _sample_n(self, batch: int, device: torch.device) -> torch.Tensor:
        n = torch.full((batch,), self.n_codebooks, dtype=torch.long, device=device)
        n_drop = int(round(batch * self.dropout))
        if n_drop:
            who = torch.randperm(batch, device=device)[:n_drop]
            n[who] = torch.randint(1, self.n_codebooks + 1, (n_drop,), device=device)
        return n

    # ---- warm-up ----------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return all(stage._host_initialized for stage in self._stages())

    @torch.no_grad()
    def _warm_up(self, x: torch.Tensor) -> bool:
        """One training step of the warm-up on latent rows x [N, D]: returns True while warming up
        (the step only collects frames), False once every stage is initialised."""
        if self.initialized:
            return False
        step = self._stages()[0]._host_step
        if step < self.warmup_steps:
            for stage in self._stages():
                stage._advance()
            self._warmup_frames.append(x.detach()[torch.randperm(x.shape[0], device=x.device)[:512]])
            while len(self._warmup_frames) > 1 and \
                    sum(f.shape[0] for f in self._warmup_frames[1:]) >= WARMUP_FRAMES:
                self._warmup_frames.pop(0)  # the newer ones alone are enough
            return True
        frames = torch.cat(self._warmup_frames + [x.detach()]) if self._warmup_frames else x.detach()
        self.initialize(frames)
        self._warmup_frames.clear()
        return False

    @torch.no_grad()
    def initialize(self, frames: torch.Tensor) -> None:
        """Initialise stage k from the residual stages 0..k-1 leave on latent frames [N, D]."""
        residual = frames.float()
        for stage, P in zip(self._stages(), self._stage_projections(), strict=True):
            z = self._down(residual, P)
            stage.initialize(z)
            residual = residual - self._up(stage.decode(stage.encode(z)), P)

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, latent: torch.Tensor, n_codebooks: int | None = None) -> QuantizerOutput:
        """Quantize a latent.

        Args:
            latent: [B, D, F].
            n_codebooks: stages to use for every item; None = all in eval, quantizer dropout in training.
        Returns:
            QuantizerOutput (codes [B, K, F] with K = all stages in training, n in eval; during the
            warm-up the latent itself and zero codes).
        """
        B, D, T = latent.shape
        if not self.training:
            codes = self.encode(latent, n_codebooks)
            zero = latent.new_zeros(())
            n = torch.full((B,), codes.shape[1], dtype=torch.long, device=latent.device)
            return QuantizerOutput(self.decode(codes), codes, zero, n)
        if n_codebooks is None and self.dropout > 0:
            n_items = self._sample_n(B, latent.device)
        else:
            n_items = torch.full((B,), self._check_n(n_codebooks), dtype=torch.long, device=latent.device)
        x = latent.transpose(1, 2).reshape(B * T, D)
        if self._warm_up(x):
            codes = torch.zeros(B, self.n_codebooks, T, dtype=torch.long, device=latent.device)
            return QuantizerOutput(latent, codes, latent.new_zeros(()), n_items)
        row_n = n_items.repeat_interleave(T)
        per_stage = self.per_stage
        residual = x.detach()
        points = torch.zeros_like(x)  # sum of the active stages' points, codebook gradients
        codebook_terms = torch.zeros_like(x)  # per_stage: value 0, own-direction codebook gradients
        stage_codes: list[torch.Tensor] = []
        for k, (stage, P) in enumerate(zip(self._stages(), self._stage_projections(), strict=True)):
            active = row_n > k
            mask = active[:, None].to(x.dtype)
            out = stage(self._down(residual, P), active)
            point = self._up(out.point, P)
            points = points + point * mask
            if per_stage:
                codebook_terms = codebook_terms + self._up(out.reparam - out.reparam.detach(), P) * mask
            residual = residual - point.detach()
            stage_codes.append(out.codes)
        target = points.detach() if per_stage else points
        quantized = x + directional_step(x, target, self.noise_std) + codebook_terms
        quantized = quantized.reshape(B, T, D).transpose(1, 2)
        codes_t = torch.stack(stage_codes, dim=0).reshape(self.n_codebooks, B, T).transpose(0, 1)
        return QuantizerOutput(quantized, codes_t, latent.new_zeros(()), n_items)

    # ---- codes --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, latent: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, D, F] latent -> [B, n, F] int64 codes (greedy residual lookup)."""
        n = self._check_n(n_codebooks)
        B, D, T = latent.shape
        residual = latent.transpose(1, 2).reshape(B * T, D)
        codes = []
        for stage, P in zip(self._stages()[:n], self._stage_projections(), strict=False):
            idx = stage.encode(self._down(residual, P))
            residual = residual - self._up(stage.decode(idx), P)
            codes.append(idx)
        return torch.stack(codes, dim=0).reshape(n, B, T).transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n, F] codes -> [B, D, F] quantized latent (sum of the n stages)."""
        B, n, T = codes.shape
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"codes have {n} stages; this quantizer has 1..{self.n_codebooks}")
        out = None
        for k, (stage, P) in enumerate(zip(self._stages()[:n], self._stage_projections(), strict=False)):
            q = self._up(stage.decode(codes[:, k].reshape(-1)), P)
            out = q if out is None else out + q
        assert out is not None
        return out.reshape(B, T, self.input_dim).transpose(1, 2)

    def decode_tables(self) -> torch.Tensor:
        """[K, codebook_size, D]: row i of table k is what code i of stage k adds to the latent, so
        ``decode(codes)`` is the sum over stages k < n of ``tables[k, codes[:, k]]`` (how the ONNX
        decoder graph decodes any number of stages)."""
        return torch.stack([self._up(stage.codewords(), P)
                            for stage, P in zip(self._stages(), self._stage_projections(), strict=True)])

    def decode_by_tables(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n, F] int64 codes -> [B, D, F]: ``decode(codes)`` as one gather of the decode tables'
        rows summed over stages, for any n (how the ONNX graphs decode)."""
        tables = self.decode_tables()  # [K, size, D]
        stages, size, dim = tables.shape
        offsets = torch.arange(codes.shape[1], device=codes.device) * size  # [n]
        rows = tables.reshape(stages * size, dim)[codes + offsets[None, :, None]]  # [B, n, F, D]
        return rows.sum(dim=1).transpose(1, 2)

    # ---- statistics ---------------------------------------------------------------------------
    def usage_stats(self) -> list[StageUsage]:
        return [stage.usage(k) for k, stage in enumerate(self._stages())]

    def reset_usage(self) -> None:
        for stage in self._stages():
            stage.reset_usage()
