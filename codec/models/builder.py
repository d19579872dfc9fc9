"""The one place that maps configurations to modules: ``build_codec(ModelConfig) -> Codec``.

The modules themselves take plain arguments (none of them imports the config); adding an encoder,
decoder or quantizer kind is a new branch here and a new config literal, nothing else.
"""

from __future__ import annotations

import math

from torch import nn

from ..config import ModelConfig, QuantizerConfig
from ..errors import ConfigError
from ..quantize import Quantizer, ResidualQuantizer, STEResidualQuantizer
from .model import Codec


def build_quantizer(input_dim: int, config: QuantizerConfig) -> Quantizer:
    """The residual quantizer for ``config.kind`` over a latent of ``input_dim`` channels."""
    if config.kind == "ste":
        return STEResidualQuantizer(
            input_dim, config.n_codebooks, config.codebook_size, config.codebook_dim,
            dropout=config.dropout, commitment_weight=config.commitment_weight,
            codebook_weight=config.codebook_weight, ste_restarts=config.ste_restarts,
            replace_interval=config.replace_interval, dead_min_count=config.dead_min_count)
    return ResidualQuantizer(
        input_dim, config.n_codebooks, config.codebook_size, config.codebook_dim, kind=config.kind,
        noise_std=config.noise_std, reparam=config.reparam, lookup=config.lookup,
        dropout=config.dropout, replace_interval=config.replace_interval,
        dead_min_count=config.dead_min_count, replace_source=config.replace_source,
        warmup_steps=config.warmup_steps, sf_inference=config.sf_inference)


def build_encoder(config: ModelConfig) -> nn.Module:
    """Audio [B, 1, T] -> latent [B, latent_dim, T / hop_length] for ``config.encoder``."""
    if config.causal:
        from .causal_encoder import CausalSTFTEncoder

        return CausalSTFTEncoder(config.stem_stride, config.encoder_dim, config.encoder_depth,
                                 config.encoder_rates, config.latent_dim, config.encoder_lookahead)
    if config.encoder == "stft":
        from .stft_encoder import STFTEncoder

        return STFTEncoder(config.stem_stride, config.encoder_dim, config.encoder_depth,
                           config.encoder_rates, config.latent_dim)
    from .encoder import DACEncoder

    return DACEncoder(config.encoder_dim, config.stem_stride, config.encoder_rates, config.latent_dim)


def build_decoder(config: ModelConfig) -> nn.Module:
    """Latent [B, latent_dim, F] -> audio [B, 1, F * hop_length] for ``config.decoder``."""
    if config.causal:
        from .causal_decoder import CausalVocosDecoder

        return CausalVocosDecoder(config.latent_dim, config.decoder_dim, config.decoder_depth,
                                  config.decoder_rates, config.head_hop, config.spectrum, config.lookahead)
    if config.decoder == "vocos":
        from .vocos_decoder import VocosDecoder

        return VocosDecoder(config.latent_dim, config.decoder_dim, config.decoder_depth,
                            config.decoder_rates, config.head_hop, config.spectrum)
    from .decoder import DACDecoder

    if config.decoder_dim >> len(config.decoder_rates) < 1:
        raise ConfigError("model.decoder_dim: too small for the number of decoder blocks "
                          "(channels halve at each block)")
    return DACDecoder(config.latent_dim, config.decoder_dim, config.decoder_rates, config.head,
                      config.head_hop, config.spectrum)


def build_codec(config: ModelConfig) -> Codec:
    """A fresh (untrained) codec for ``config``. Raises ConfigError for combinations it cannot build."""
    q = config.quantizer
    if q.codebook_dim > config.latent_dim:
        raise ConfigError(f"quantizer.codebook_dim ({q.codebook_dim}) must not exceed "
                          f"model.latent_dim ({config.latent_dim})")
    assert config.hop_length == config.stem_stride * math.prod(config.encoder_rates)
    return Codec(config, build_encoder(config), build_quantizer(config.latent_dim, q),
                 build_decoder(config))
