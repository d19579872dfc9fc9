"""The codec: encoder -> residual quantizer -> decoder (``codec.models.builder.build_codec`` makes one from a
ModelConfig)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MIN_ENCODE_FRAMES, ModelConfig
from ..quantize.base import Quantizer


@dataclass
class CodecOutput:
    """Result of ``Codec.forward``.

    audio: [B, 1, T] reconstruction, same length as the input.
    codes: [B, K, F] codes of the stages computed.
    latent: [B, D, F] encoder output (unit RMS per frame).
    quantized: [B, D, F] quantized latent fed to the decoder.
    aux_loss: scalar, the STE baseline's weighted commitment + codebook loss (0 for DiVeQ/SF-DiVeQ).
    n_codebooks: [B] stages each item used.
    """

    audio: torch.Tensor
    codes: torch.Tensor
    latent: torch.Tensor
    quantized: torch.Tensor
    aux_loss: torch.Tensor
    n_codebooks: torch.Tensor


class Codec(nn.Module):
    """A neural audio codec at ``config.sample_rate``, mono, ``config.frame_rate`` frames per second.

    ``weights_hash`` is the sha256 of the weights this model was saved or loaded with (None for a
    fresh model); bitstreams record it so a stream is never decoded by another model.
    """

    quantizer: Quantizer

    def __init__(self, config: ModelConfig, encoder: nn.Module, quantizer: Quantizer,
                 decoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.weights_hash: str | None = None
        self.encoder = encoder  # [B, 1, T] -> [B, D, T / hop_length]
        self.quantizer = quantizer  # an nn.Module with the codec.quantize.Quantizer interface
        self.decoder = decoder  # [B, D, F] -> [B, 1, F * hop_length]

    # ---- derived facts ----------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def n_codebooks(self) -> int:
        return self.config.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def n_frames(self, n_samples: int) -> int:
        """Frames that code ``n_samples`` samples (ceil(n_samples / hop_length))."""
        return self.config.n_frames(n_samples)

    # ---- coding -----------------------------------------------------------------------------
    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be [B, 1, T], got {tuple(audio.shape)}")

    def encode_latent(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] audio -> [B, D, ceil(T / hop_length)] latent (zero-padded on the right to whole
        frames, and to at least MIN_ENCODE_FRAMES frames, whose extra latent frames are dropped)."""
        self._check_audio(audio)
        frames = self.n_frames(audio.shape[-1])
        pad = max(frames, MIN_ENCODE_FRAMES) * self.hop_length - audio.shape[-1]
        latent = self.encoder(F.pad(audio, (0, pad)))
        return latent if frames >= MIN_ENCODE_FRAMES else latent[..., :frames]

    def forward(self, audio: torch.Tensor, n_codebooks: int | None = None) -> CodecOutput:
        """Encode, quantize and decode.

        Args:
            audio: [B, 1, T] at ``sample_rate``.
            n_codebooks: stages for every item; None = quantizer dropout in training, all in eval.
        """
        latent = self.encode_latent(audio)
        q = self.quantizer(latent, n_codebooks)
        recon = self.decoder(q.quantized)[..., : audio.shape[-1]]
        return CodecOutput(recon, q.codes, latent, q.quantized, q.aux_loss, q.n_codebooks)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, 1, T] audio -> [B, n, ceil(T / hop_length)] int64 codes."""
        return self.quantizer.encode(self.encode_latent(audio), n_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, n, F] codes -> [B, 1, F * hop_length] audio, or its first ``length`` samples."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, n, F], got {tuple(codes.shape)}")
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0, device=codes.device)
        audio = self.decoder(self.quantizer.decode(codes))
        return audio if length is None else audio[..., :length]

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Nominal bits per second with ``n_codebooks`` stages."""
        return self.config.bitrate(n_codebooks)
