"""The straight-through baseline: descript-audio-codec's own ResidualVectorQuantize, as DAC trains it
(commitment and codebook losses, L2-normalised factorised lookup), behind our quantizer interface."""

from __future__ import annotations

import torch
from torch import nn

from .base import QuantizerOutput, StageUsage, usage_from_counts
from .stage import sample_rows


class STEResidualQuantizer(nn.Module):
    """DAC's RVQ (straight-through estimator) with the same interface as ResidualQuantizer.

    ``aux_loss`` = commitment_weight * commitment + codebook_weight * codebook loss.
    With ``ste_restarts`` it gets DiVeQ's data initialisation and dead-code restarts
    (:meth:`_restart_codes`). Quantizer dropout is DAC's own (the first ``dropout`` fraction of the batch gets a random number
    of stages), so ``n_codebooks`` in the output reports all stages during training.

    Args:
        input_dim: D, the latent dimension.
        n_codebooks, codebook_size, codebook_dim: as DAC's ``ResidualVectorQuantize``.
        dropout: DAC's quantizer dropout fraction.
        commitment_weight, codebook_weight: weights of the two losses in ``aux_loss``.
        ste_restarts: data initialisation and dead-code restarts (every ``replace_interval`` steps,
            codes used fewer than ``dead_min_count`` times).
    """

    # buffers (registered in __init__; the last three only with ste_restarts)
    usage_counts: torch.Tensor
    interval_counts: torch.Tensor
    step: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int, *,
                 dropout: float, commitment_weight: float, codebook_weight: float,
                 ste_restarts: bool, replace_interval: int, dead_min_count: int) -> None:
        super().__init__()
        from dac.nn.quantize import ResidualVectorQuantize  # heavy import, only when used

        self.input_dim = input_dim
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.commitment_weight, self.codebook_weight = commitment_weight, codebook_weight
        self.ste_restarts = ste_restarts
        self.replace_interval, self.dead_min_count = replace_interval, dead_min_count
        self.rvq = ResidualVectorQuantize(input_dim=input_dim, n_codebooks=n_codebooks,
                                          codebook_size=codebook_size, codebook_dim=codebook_dim,
                                          quantizer_dropout=dropout)
        self.register_buffer("usage_counts", torch.zeros(n_codebooks, codebook_size, dtype=torch.long))
        if ste_restarts:
            self.register_buffer("interval_counts", torch.zeros_like(self.usage_counts))
            self.register_buffer("step", torch.zeros((), dtype=torch.long))
            self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def _check_n(self, n_codebooks: int | None) -> int:
        n = self.n_codebooks if n_codebooks is None else int(n_codebooks)
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"n_codebooks must be in 1..{self.n_codebooks}, got {n}")
        return n

    def forward(self, latent: torch.Tensor, n_codebooks: int | None = None) -> QuantizerOutput:
        """[B, D, F] -> QuantizerOutput (codes [B, K, F])."""
        n = self._check_n(n_codebooks)
        if not self.training:
            codes = self.encode(latent, n)
            zero = latent.new_zeros(())
            return QuantizerOutput(self.decode(codes), codes, zero,
                                   torch.full((latent.shape[0],), n, dtype=torch.long, device=latent.device))
        if self.ste_restarts:
            self._restart_codes(latent)
        quantized, codes, _, commitment, codebook = self.rvq(latent, n)
        aux = self.commitment_weight * commitment + self.codebook_weight * codebook
        with torch.no_grad():
            offsets = torch.arange(codes.shape[1], device=codes.device)[None, :, None] * self.codebook_size
            flat = (codes + offsets).reshape(-1)
            counts = torch.bincount(flat, minlength=self.usage_counts.numel()).view_as(self.usage_counts)
            self.usage_counts += counts
            if self.ste_restarts:
                self.interval_counts += counts
        n_items = torch.full((latent.shape[0],), self.n_codebooks, dtype=torch.long, device=latent.device)
        return QuantizerOutput(quantized, codes, aux, n_items)

    @torch.no_grad()
    def _restart_codes(self, latent: torch.Tensor) -> None:
        """``ste_restarts``: on the first training step set every codebook from its stage's projected
        inputs on this batch [B, D, F] (stage by stage, each on the residual the earlier ones leave);
        every ``replace_interval`` steps restart codes used fewer than ``dead_min_count`` times at
        projected inputs of this batch."""
        step = int(self.step)
        self.step += 1
        first = not bool(self.initialized)
        due = self.replace_interval > 0 and step > 0 and step % self.replace_interval == 0
        if not (first or due):
            return
        residual = latent.detach()
        for k, vq in enumerate(self.rvq.quantizers):
            z_e = vq.in_proj(residual)  # [B, d, F]
            frames = z_e.transpose(1, 2).reshape(-1, z_e.shape[1]).float()
            weight = vq.codebook.weight
            if first:
                weight.copy_(sample_rows(frames, weight.shape[0]).to(weight.dtype))
            else:
                dead = self.interval_counts[k] < self.dead_min_count
                n_dead = int(dead.sum())
                if n_dead:
                    weight[dead] = sample_rows(frames, n_dead).to(weight.dtype)
            z_q, _ = vq.decode_latents(z_e)
            residual = residual - vq.out_proj(z_q)
        self.interval_counts.zero_()
        self.initialized.fill_(True)

    @torch.no_grad()
    def encode(self, latent: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, D, F] -> [B, n, F] codes."""
        n = self._check_n(n_codebooks)
        was_training = self.rvq.training
        self.rvq.eval()
        try:
            _, codes, _, _, _ = self.rvq(latent, n)
        finally:
            self.rvq.train(was_training)
        return codes[:, :n]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n, F] codes -> [B, D, F] quantized latent."""
        if not 1 <= codes.shape[1] <= self.n_codebooks:
            raise ValueError(f"codes have {codes.shape[1]} stages; this quantizer has 1..{self.n_codebooks}")
        quantized, _, _ = self.rvq.from_codes(codes)
        return quantized

    def usage_stats(self) -> list[StageUsage]:
        return [usage_from_counts(k, self.usage_counts[k]) for k in range(self.n_codebooks)]

    def reset_usage(self) -> None:
        self.usage_counts.zero_()
