"""An SF-DiVeQ stage: codewords form a curve; training quantizes to dithered points on its segments."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import StageOutput
from .functional import nearest_code, segment_points, sf_diveq
from .stage import CodebookStage

#: The finite codes an SF-DiVeQ stage can transmit (``QuantizerConfig.sf_inference``).
SF_INFERENCE_MODES = ("midpoint", "vertex")


class SFDiVeQStage(CodebookStage):
    """One space-filling DiVeQ quantizer whose ``codebook_size`` codes are points of a curve.

    Training: draw lam_k ~ U(0, 1) per segment, quantize z to the nearest dithered point
    d_k = (1 - lam_k) c_k + lam_k c_{k+1} with the two-term reparameterised error (forward value ~ d_i).
    The curve is initialised from input frames in arrival order: codeword j is the mean of the j-th
    contiguous chunk of them (adjacent codewords from adjacent latents).

    Finite inference code (``inference``):
      - ``midpoint``: a curve of ``codebook_size + 1`` points (``codebook_size`` segments); the code
        is a segment index, decoded to the segment's midpoint (c_i + c_{i+1}) / 2.
      - ``vertex``: a curve of ``codebook_size`` points (``codebook_size - 1`` segments); the code is
        the index of a curve point, decoded to that point.
    Either way the encoder picks the nearest decodable value, so decode(encode(z)) is exactly what
    the encoder reconstructs.

    Args:
        codebook_size: number of codes transmitted.
        dim: vector dimension.
        noise_std: standard deviation of the directional noise.
        cosine: nearest point by cosine similarity.
        inference: ``midpoint`` or ``vertex``.
    """

    def __init__(self, codebook_size: int, dim: int, noise_std: float = 1e-3, cosine: bool = False,
                 inference: str = "midpoint") -> None:
        if inference not in SF_INFERENCE_MODES:
            raise ValueError(f"inference must be one of {SF_INFERENCE_MODES}, got {inference!r}")
        n_points = codebook_size + 1 if inference == "midpoint" else codebook_size
        super().__init__(n_points, codebook_size, dim)
        self.noise_std = noise_std
        self.cosine = cosine
        self.inference = inference

    def inference_codebook(self) -> torch.Tensor:
        """[codebook_size, d] the values codes decode to (segment midpoints or curve points)."""
        if self.inference == "vertex":
            return self.codebook
        return 0.5 * (self.codebook[:-1] + self.codebook[1:])

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """[N, d] -> [N] codes (nearest decodable value)."""
        return nearest_code(z, self.inference_codebook(), self.cosine)

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """[N] codes -> [N, d] values."""
        return self.inference_codebook()[idx]

    def codewords(self) -> torch.Tensor:
        return self.inference_codebook()

    def forward(self, z: torch.Tensor, active: torch.Tensor | None = None) -> StageOutput:
        """Quantize rows of z: [N, d] (active: [N] bool or None).

        Training: ``reparam`` is SF-DiVeQ's output, ``point`` the dithered point (codebook gradient
        only), ``codes`` the segment index (statistics count segments in midpoint mode, the nearer
        endpoint in vertex mode, i.e. the code eval would send for that point). Eval: the finite code.
        """
        if not self.training:
            idx = self.encode(z)
            value = self.decode(idx)
            return StageOutput(value, value, idx)
        self._advance()
        live = z if active is None else z[active]
        if not self._host_initialized:
            self.initialize(live if live.shape[0] > 0 else z)
        n_segments = self.codebook.shape[0] - 1
        lam = torch.rand(n_segments, device=z.device)
        points = segment_points(self.codebook.detach(), lam)
        seg = nearest_code(z, points, self.cosine)
        start, end, lam_i = self.codebook[seg], self.codebook[seg + 1], lam[seg]
        point = (1 - lam_i[:, None]) * start + lam_i[:, None] * end
        idx = seg if self.inference == "midpoint" else seg + (lam_i > 0.5).long()
        self._count(idx if active is None else idx[active])
        return StageOutput(sf_diveq(z, start, end, lam_i, self.noise_std), point, idx)

    def _init_from(self, frames: torch.Tensor) -> None:
        n = self.codebook.shape[0]
        if frames.shape[0] >= n:
            points = torch.stack([c.mean(dim=0) for c in torch.tensor_split(frames, n, dim=0)])
        else:  # fewer frames than points: linear interpolation along the sequence
            points = F.interpolate(frames.t()[None], size=n, mode="linear", align_corners=True)[0].t()
        self.codebook.data.copy_(points)
