"""An SF-DiVeQ stage: codewords form a curve; training quantizes to dithered points on its segments."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import nearest_code, segment_points, sf_diveq
from .stage import CodebookStage


class SFDiVeQStage(CodebookStage):
    """One space-filling DiVeQ quantizer with ``codebook_size`` segments (``codebook_size + 1`` points).

    Training: draw lam_k ~ U(0, 1) per segment, quantize z to the nearest dithered point
    d_k = (1 - lam_k) c_k + lam_k c_{k+1} with the two-term reparameterised error (forward value ~ d_i).
    Warm-up: for ``warmup_steps`` training steps z passes unquantized while recent inputs are
    collected; then codeword j is the mean of the j-th contiguous chunk of them (adjacent codewords
    from adjacent latents). With ``warmup_steps = 0`` the first training batch initialises the curve.

    Finite inference code (``sf_inference = "midpoint"``): the transmitted code is the segment index i
    and the decoder's value is the segment midpoint (c_i + c_{i+1}) / 2; the encoder picks the nearest
    midpoint, so decode(encode(z)) is exactly what the encoder reconstructs.

    Args:
        codebook_size: number of segments (= codes transmitted).
        dim: vector dimension.
        noise_std: standard deviation of the directional noise.
        cosine: nearest point by cosine similarity.
        warmup_steps: unquantized steps before the curve is initialised from collected inputs.
    """

    def __init__(self, codebook_size: int, dim: int, noise_std: float = 1e-3, cosine: bool = False,
                 warmup_steps: int = 0) -> None:
        super().__init__(codebook_size + 1, codebook_size, dim)
        self.noise_std = noise_std
        self.cosine = cosine
        self.warmup_steps = warmup_steps

    def inference_codebook(self) -> torch.Tensor:
        """[codebook_size, d] the values codes decode to (segment midpoints)."""
        return 0.5 * (self.codebook[:-1] + self.codebook[1:])

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """[N, d] -> [N] segment indices (nearest midpoint)."""
        return nearest_code(z, self.inference_codebook(), self.cosine)

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """[N] segment indices -> [N, d] midpoints."""
        return self.inference_codebook()[idx]

    def forward(self, z: torch.Tensor, active: torch.Tensor | None = None, reparam: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize rows of z: [N, d] (active: [N] bool or None) -> (z_q [N, d], idx [N]).

        ``reparam=False`` returns the plain dithered point (gradient to the codebook only)."""
        if not self.training:
            idx = self.encode(z)
            return self.decode(idx), idx
        step = self._advance()
        live = z if active is None else z[active]
        if not self._host_initialized:
            if step < self.warmup_steps:
                self._remember(live)
                return z, self.encode(z)
            if self.warmup_steps > 0 and int(self.frames_filled) > 0:
                self.initialize(self._recent_frames())
            else:
                self.initialize(live if live.shape[0] > 0 else z)
        lam = torch.rand(self.codebook_size, device=z.device)
        points = segment_points(self.codebook.detach(), lam)
        idx = nearest_code(z, points, self.cosine)
        start, end, lam_i = self.codebook[idx], self.codebook[idx + 1], lam[idx]
        if reparam:
            z_q = sf_diveq(z, start, end, lam_i, self.noise_std)
        else:
            z_q = (1 - lam_i[:, None]) * start + lam_i[:, None] * end
        self._count(idx if active is None else idx[active])
        return z_q, idx

    def _init_from(self, frames: torch.Tensor) -> None:
        n = self.codebook.shape[0]
        if frames.shape[0] >= n:
            points = torch.stack([c.mean(dim=0) for c in torch.tensor_split(frames, n, dim=0)])
        else:  # fewer frames than points: linear interpolation along the sequence
            points = F.interpolate(frames.t()[None], size=n, mode="linear", align_corners=True)[0].t()
        self.codebook.data.copy_(points)
