"""Pure functions at the heart of DiVeQ and SF-DiVeQ (no state, no modules).

Vectors are rows: z [N, d] latents, codebook [K, d]. sg[.] is ``.detach()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_code(z: torch.Tensor, codebook: torch.Tensor, cosine: bool = False,
                 norms: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest codeword for each row.

    Args:
        z: [N, d] vectors.
        codebook: [K, d] codewords.
        cosine: compare L2-normalised vectors (cosine similarity) instead of Euclidean distance.
        norms: [K] the codewords' squared norms (:func:`codeword_norms`) when the caller keeps them;
            None computes them.
    Returns:
        [N] int64 indices.
    """
    z = z.detach().float()
    codebook = codebook.detach().float()
    if cosine:
        return (F.normalize(z, dim=-1) @ F.normalize(codebook, dim=-1).t()).argmax(dim=-1)
    # ||z||^2 is the same for every codeword: argmin ||c||^2 - 2 z.c
    norms = codeword_norms(codebook) if norms is None else norms
    scores = torch.addmm(norms[None, :], z, codebook.t(), alpha=-2.0)
    return scores.argmin(dim=-1)


def codeword_norms(codebook: torch.Tensor) -> torch.Tensor:
    """[K, d] codewords -> [K] squared norms (float32, no gradient), as :func:`nearest_code` uses them."""
    return codebook.detach().float().pow(2).sum(-1)


def directional_step(z: torch.Tensor, target: torch.Tensor, noise_std: float) -> torch.Tensor:
    """DiVeQ's reparameterised step from z toward target: ||target - z|| * sg[(target - z + n) / ||.||].

    The length carries gradients to both z and target; the direction is detached and perturbed by
    Gaussian noise n ~ N(0, noise_std^2 I). With noise_std = 0, ``z + step`` equals target.

    Args:
        z: [N, d]; target: [N, d].
    Returns:
        [N, d] step.
    """
    diff = target - z
    length = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    direction = diff.detach()
    if noise_std > 0:
        direction = direction + noise_std * torch.randn_like(direction)
    direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True).clamp_min(1e-12)
    return length * direction


def diveq(z: torch.Tensor, code: torch.Tensor, noise_std: float) -> torch.Tensor:
    """DiVeQ output z + ||c - z|| sg[(c - z + n)/||c - z + n||]; forward value ~ c. Shapes [N, d]."""
    return z + directional_step(z, code, noise_std)


def segment_points(curve: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Points (1 - lam_k) c_k + lam_k c_{k+1} on the segments of a curve.

    Args:
        curve: [K + 1, d] codewords in curve order.
        lam: [K] positions in [0, 1], one per segment.
    Returns:
        [K, d] points.
    """
    lam = lam[:, None].to(curve.dtype)
    return (1 - lam) * curve[:-1] + lam * curve[1:]


def sf_diveq(z: torch.Tensor, start: torch.Tensor, end: torch.Tensor, lam: torch.Tensor,
             noise_std: float) -> torch.Tensor:
    """SF-DiVeQ output with the two-term error vector; forward value ~ (1 - lam) start + lam end.

    z + (1 - lam) ||start - z|| sg[v1/||v1||] + lam ||end - z|| sg[v2/||v2||],
    v1 = start - z + n1, v2 = end - z + n2.

    Args:
        z: [N, d]; start, end: [N, d] the chosen segment's endpoints; lam: [N] dither positions.
    Returns:
        [N, d].
    """
    lam = lam[:, None].to(z.dtype)
    return (z + (1 - lam) * directional_step(z, start, noise_std)
            + lam * directional_step(z, end, noise_std))
