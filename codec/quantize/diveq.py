"""A DiVeQ stage: nearest codeword, reparameterised directional error, dead-code replacement."""

from __future__ import annotations

import torch
import torch.distributed as dist

from .base import StageOutput
from .functional import codeword_norms, diveq, nearest_code
from .stage import CodebookStage, distributed_ready, sample_rows


class DiVeQStage(CodebookStage):
    """One DiVeQ vector quantizer.

    Training: i = argmin ||z - c_j||, output z + ||c_i - z|| sg[(c_i - z + n)/||c_i - z + n||]
    (forward value ~ c_i); no commitment or codebook loss. The codebook is initialised from the
    first training batch's inputs; every ``replace_interval`` training steps, codes selected fewer than
    ``dead_min_count`` times are restarted (``replace_source``: recent input frames, or used codewords
    sampled in proportion to use plus small noise). Eval: plain nearest codeword.

    Args:
        codebook_size: K codewords.
        dim: d, vector dimension.
        noise_std: standard deviation of the directional noise (0 = "detach" variant).
        cosine: nearest code by cosine similarity on L2-normalised vectors.
        replace_interval: steps between replacements (0 = never).
        dead_min_count: selections per interval below which a code is dead.
        replace_source: "frames" or "codewords".
    """

    def __init__(self, codebook_size: int, dim: int, noise_std: float = 1e-3, cosine: bool = False,
                 replace_interval: int = 50, dead_min_count: int = 1,
                 replace_source: str = "frames") -> None:
        super().__init__(codebook_size, codebook_size, dim)
        self.noise_std = noise_std
        self.cosine = cosine
        self.replace_interval = replace_interval
        self.dead_min_count = dead_min_count
        self.replace_source = replace_source
        self._norms: tuple[tuple[int, int], torch.Tensor] | None = None

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """[N, d] -> [N] code indices."""
        return nearest_code(z, self.codebook, self.cosine, self._codeword_norms())

    def _codeword_norms(self) -> torch.Tensor | None:
        """In eval mode, the codewords' squared norms, kept until the codebook changes (a stream coded
        frame by frame asks for them at every frame); None in training, where the codebook also
        changes through ``.data`` (initialisation, dead-code restarts), which no version counter sees."""
        if self.training or self.cosine:
            return None
        key = (self.codebook._version, self.codebook.data_ptr())
        if self._norms is None or self._norms[0] != key:
            self._norms = key, codeword_norms(self.codebook)
        return self._norms[1]

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """[N] indices -> [N, d] codewords."""
        return self.codebook[idx]

    def codewords(self) -> torch.Tensor:
        return self.codebook

    def forward(self, z: torch.Tensor, active: torch.Tensor | None = None) -> StageOutput:
        """Quantize rows of z (training: DiVeQ; eval: plain nearest codeword).

        Args:
            z: [N, d].
            active: [N] bool, rows that really use this stage (quantizer dropout); statistics and
                replacement see only those. None = all.
        Returns:
            StageOutput: ``reparam`` = z + ||c - z|| sg[(c - z + n)/||c - z + n||] (forward value ~ c,
            gradients to z and c), ``point`` = the codeword c itself (gradient to the codebook only),
            ``codes`` [N].
        """
        if not self.training:
            idx = self.encode(z)
            code = self.decode(idx)
            return StageOutput(code, code, idx)
        if not self._host_initialized:
            self.initialize(z if active is None or not bool(active.any()) else z[active])
        step = self._advance()
        if self.replace_interval > 0 and step > 0 and step % self.replace_interval == 0:
            self.replace_dead_codes()
        idx = self.encode(z)
        code = self.decode(idx)
        used = idx if active is None else idx[active]
        self._count(used)
        self._remember(z if active is None else z[active])
        return StageOutput(diveq(z, code, self.noise_std), code, idx)

    def _init_from(self, frames: torch.Tensor) -> None:
        self.codebook.data.copy_(sample_rows(frames, self.codebook.shape[0]))

    @torch.no_grad()
    def replace_dead_codes(self) -> int:
        """Restart dead codes; returns how many were replaced (identical on every rank)."""
        counts = self.interval_counts.clone()
        if distributed_ready():
            dist.all_reduce(counts)
        if int(counts.sum()) == 0:  # nothing seen since the last reset (e.g. initialised just now)
            return 0
        dead = counts < self.dead_min_count
        n_dead = int(dead.sum())
        if n_dead and (not distributed_ready() or dist.get_rank() == 0):
            if self.replace_source == "frames" and int(self.frames_filled) > 0:
                new = sample_rows(self._recent_frames(), n_dead)
            else:
                weights = counts.float().clamp_min(0)
                if float(weights.sum()) == 0:
                    weights = torch.ones_like(weights)
                src = torch.multinomial(weights, n_dead, replacement=True)
                new = self.codebook.data[src]
                new = new + 1e-3 * new.std().clamp_min(1e-6) * torch.randn_like(new)
            self.codebook.data[dead] = new.to(self.codebook.dtype)
        if n_dead:
            self._broadcast_codebook()
        self.interval_counts.zero_()
        return n_dead
