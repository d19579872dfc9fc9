"""Model configuration: frozen dataclasses are the schema, and :func:`from_dict` validates plain data.

Glossary (one name per concept, used everywhere in the project):

- ``sample_rate``: Hz; audio the codec accepts is in :data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`
  (the bitstream format's own field bounds are wider: ``codec.format.streamheader``).
- ``hop_length``: samples per frame; ``frame_rate``: frames per second; ``n_frames``: the frames that
  code ``n_samples`` samples, ceil(n_samples / hop_length) (:func:`frame_count`).
- ``n_codebooks``: residual stages, K. As a model property (``ModelConfig.n_codebooks``) the stages
  the model has; as an argument (``encode(..., n_codebooks=n)``) the stages asked for, 1..K; the
  ``[B]`` tensor ``CodecOutput.n_codebooks`` holds the stages each item used; a recipe's
  ``validation.n_codebooks`` is the tuple of stage counts it scores.
- ``codebook_size``: codes per stage, a power of two; ``bits_per_code`` = log2(codebook_size)
  (:func:`bits_per_code`); ``codebook_dim``: dimension a stage quantizes in.

Shape letters: B batch, C audio channels, D latent dimension, K codebook stages, T samples (audio
``[B, 1, T]``), F frames (latents ``[B, D, F]``, codes ``[B, K, F]``; F = ceil(T / hop_length)).
STFTs are written ``[..., bins, frames]``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar

from .errors import ConfigError

#: Sample rates (Hz) the codec accepts for audio and models.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 96000
#: Audio channels a stream holds at most (the argument checks and the stream header both bound them).
MAX_CHANNELS = 64
#: A causal model's largest look-ahead in head hops: n_fft / head_hop - 1 (the iSTFT head's n_fft is
#: 4 head hops), where every synthesis window already lies inside the input seen.
MAX_LOOKAHEAD = 3
#: A causal STFT encoder's largest look-ahead in its STFT hops (its windows are 4 hops long; with 1
#: they lie where the offline encoder's centred windows do).
MAX_ENCODER_LOOKAHEAD = 2
#: Frames the encoders see at least: shorter audio is zero-padded to this many frames before encoding
#: (an STFT encoder's centred frames reflect-pad by two of its hops, which needs more samples than
#: that), and the codes of the padding are dropped.
MIN_ENCODE_FRAMES = 2


def frame_count(n_samples: int, hop_length: int) -> int:
    """Frames that code ``n_samples`` samples: ceil(n_samples / hop_length)."""
    return -(-n_samples // hop_length)


def bits_per_code(codebook_size: int) -> int:
    """Bits one code takes: log2(codebook_size) (a power of two)."""
    return codebook_size.bit_length() - 1

QuantizerKind = Literal["diveq", "sfdiveq", "ste"]
Reparam = Literal["per_stage", "on_sum"]
Lookup = Literal["euclidean", "cosine"]
ReplaceSource = Literal["frames", "codewords"]
SFInference = Literal["midpoint", "vertex"]
Head = Literal["istft", "conv"]
EncoderKind = Literal["dac", "stft"]
DecoderKind = Literal["dac", "vocos"]
Spectrum = Literal["polar", "cartesian"]


@dataclasses.dataclass(frozen=True)
class QuantizerConfig:
    """Residual vector quantizer settings.

    kind: ``diveq`` / ``sfdiveq`` (every stage uses that reparameterisation) or ``ste`` (DAC's own
        straight-through RVQ with commitment and codebook losses, the baseline).
    noise_std: standard deviation of DiVeQ's directional noise n (0 gives the "detach" variant).
    reparam: how the gradient reaches the stages (``codec.quantize.residual``): ``on_sum`` (the
        official Residual DiVeQ: every codebook and the encoder get the gradient along the total
        error) or ``per_stage`` (each codebook along its own stage's error, the encoder along the
        total error). Training only: eval and the codes are the same either way. Ignored by ``ste``.
    lookup: nearest code by Euclidean distance, or by cosine on L2-normalised vectors.
    dropout: fraction of each training batch that uses a random number of stages (1..n_codebooks).
    replace_interval: training steps between dead-code replacements (0 disables; DiVeQ only).
    dead_min_count: a code selected fewer times than this within an interval is dead.
    replace_source: ``frames`` restarts dead codes at recent stage inputs; ``codewords`` copies used
        codes (sampled in proportion to use) plus small noise, as the official DiVeQ code does.
    warmup_steps: DiVeQ / SF-DiVeQ: training steps that pass the latent through unquantized while
        collecting it; then stage k is initialised from the residual stages 0..k-1 leave on it.
        0 initialises the same way from the first training batch.
    sf_inference: the finite code SF-DiVeQ transmits: ``midpoint`` = segment index decoded to the
        segment's midpoint (a curve of codebook_size + 1 points), ``vertex`` = the index of one of
        codebook_size curve points, decoded to it.
    commitment_weight, codebook_weight: STE baseline only (DAC's defaults 0.25 and 1.0).
    ste_restarts: STE baseline only: initialise the codebooks from the first training batch's stage
        inputs and restart dead codes every ``replace_interval`` steps, as DiVeQ does (so a
        DiVeQ-versus-STE comparison does not confound the method with the initialisation).
    """

    kind: QuantizerKind = "diveq"
    n_codebooks: int = 12
    codebook_size: int = 1024
    codebook_dim: int = 16
    noise_std: float = 1e-3
    reparam: Reparam = "on_sum"
    lookup: Lookup = "euclidean"
    dropout: float = 0.5
    replace_interval: int = 50
    dead_min_count: int = 1
    replace_source: ReplaceSource = "frames"
    warmup_steps: int = 0
    sf_inference: SFInference = "midpoint"
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    ste_restarts: bool = False

    def __post_init__(self) -> None:
        require(self.n_codebooks >= 1, "quantizer.n_codebooks", "must be >= 1")
        size = self.codebook_size
        require(size >= 2 and size & (size - 1) == 0, "quantizer.codebook_size",
               f"must be a power of two >= 2, got {size}")
        require(self.codebook_dim >= 1, "quantizer.codebook_dim", "must be >= 1")
        require(self.noise_std >= 0, "quantizer.noise_std", "must be >= 0")
        require(0.0 <= self.dropout <= 1.0, "quantizer.dropout", "must be in [0, 1]")
        require(self.replace_interval >= 0, "quantizer.replace_interval", "must be >= 0")
        require(self.warmup_steps >= 0, "quantizer.warmup_steps", "must be >= 0")

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A codec: encoder -> residual quantizer -> decoder (modules built by ``codec.models.builder``).

    Encoders (``encoder``):
      - ``dac``: a strided stem convolution (``stem_stride``) brings the signal to a reduced rate at
        once, then DAC ``EncoderBlock`` s with strides ``encoder_rates`` (``encoder_dim`` channels,
        doubling per block).
      - ``stft``: reads the power-compressed complex STFT with hop ``stem_stride`` (n_fft = 4 x hop),
        ``encoder_depth`` ConvNeXt blocks of ``encoder_dim`` channels at that frame rate, then strided
        convolutions ``encoder_rates`` down to the latent rate.
    Either way ``hop_length = stem_stride * prod(encoder_rates)``.
    Decoders (``decoder``):
      - ``dac``: DAC ``DecoderBlock`` s upsampling by ``decoder_rates`` from ``decoder_dim`` channels
        (halving per block), then the head: ``istft`` or ``conv`` (transposed convolution).
      - ``vocos``: ``decoder_depth`` ConvNeXt blocks of ``decoder_dim`` channels at the latent frame
        rate, transposed convolutions ``decoder_rates``, then an iSTFT head.
    The head makes ``head_hop = hop_length / prod(decoder_rates)`` samples per step; an iSTFT head
    (n_fft = 4 x head_hop) predicts a ``spectrum``: ``polar`` (log-magnitude, angle) or ``cartesian``
    (real and imaginary parts of the power-compressed spectrum).

    Timing (``causal``; ``docs/streaming.md``): the offline kind (False) looks both ways (centred STFT
    frames, centred convolutions). The causal kind (True; ``stft`` encoder and ``vocos`` decoder) sees
    only the past: each STFT analysis window ends at its hop, convolutions are padded on the left,
    the upsampler keeps its overlap for the next frame and the iSTFT head's overlap-add completes
    samples frame by frame, so it codes a stream frame by frame (``codec.runtime.stepper``). Same parameter
    names and shapes as the offline kind: a causal model can start from an offline one's weights.
    ``lookahead`` (causal only, 0..3) delays the decoder's output by that many head hops beyond the
    frame (the algorithmic latency is given by :attr:`latency_samples`), and with 3 every
    synthesis window lies inside the input already seen (smaller values let the newest windows reach
    past it, into what the model predicts). ``encoder_lookahead`` (causal only, 0..2) lets the
    encoder's STFT windows end that many of its hops (``stem_stride`` samples) after their frame: 1
    puts the offline encoder's frames where they were (its windows are centred), so weights trained
    offline keep their phase; it adds ``encoder_lookahead * stem_stride`` samples to the latency.
    """

    name: str = "diveq-codec"
    sample_rate: int = 16000
    stem_stride: int = 4
    encoder_dim: int = 32
    encoder_rates: tuple[int, ...] = (2, 5, 8)
    latent_dim: int = 16
    decoder_dim: int = 256
    decoder_rates: tuple[int, ...] = (2, 2)
    head: Head = "istft"
    quantizer: QuantizerConfig = dataclasses.field(default_factory=QuantizerConfig)
    encoder: EncoderKind = "dac"
    encoder_depth: int = 4
    decoder: DecoderKind = "dac"
    decoder_depth: int = 8
    spectrum: Spectrum = "polar"
    causal: bool = False
    lookahead: int = 0
    encoder_lookahead: int = 0

    def __post_init__(self) -> None:
        require(MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE, "model.sample_rate",
                f"must be in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
        for key in ("stem_stride", "encoder_dim", "latent_dim", "decoder_dim"):
            require(getattr(self, key) >= 1, f"model.{key}", "must be >= 1")
        for key in ("encoder_rates", "decoder_rates"):
            require(all(r >= 1 for r in getattr(self, key)), f"model.{key}", "strides must be >= 1")
        require(self.hop_length % math.prod(self.decoder_rates) == 0, "model.decoder_rates",
               f"their product must divide hop_length {self.hop_length}")
        require(self.encoder_depth >= 0, "model.encoder_depth", "must be >= 0")
        require(self.decoder_depth >= 0, "model.decoder_depth", "must be >= 0")
        require(self.decoder != "vocos" or self.head == "istft", "model.head",
               "the vocos decoder has an istft head")
        require(self.head == "istft" or self.spectrum == "polar", "model.spectrum",
               "applies to an istft head only")
        require(not self.causal or (self.encoder == "stft" and self.decoder == "vocos"), "model.causal",
                "needs encoder = \"stft\" and decoder = \"vocos\"")
        require(0 <= self.lookahead <= MAX_LOOKAHEAD, "model.lookahead", f"must be in 0..{MAX_LOOKAHEAD}")
        require(self.causal or self.lookahead == 0, "model.lookahead", "applies to a causal model only")
        require(0 <= self.encoder_lookahead <= MAX_ENCODER_LOOKAHEAD, "model.encoder_lookahead",
                f"must be in 0..{MAX_ENCODER_LOOKAHEAD}")
        require(self.causal or self.encoder_lookahead == 0, "model.encoder_lookahead",
                "applies to a causal model only")

    @property
    def hop_length(self) -> int:
        return self.stem_stride * math.prod(self.encoder_rates)

    @property
    def head_hop(self) -> int:
        return self.hop_length // math.prod(self.decoder_rates)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency of a causal model at ``sample_rate``: the frame plus the look-aheads,
        ``hop_length + encoder_lookahead * stem_stride + lookahead * head_hop`` (0 for the offline
        kind, which codes whole signals)."""
        if not self.causal:
            return 0
        return self.hop_length + self.encoder_lookahead * self.stem_stride + self.lookahead * self.head_hop

    @property
    def n_codebooks(self) -> int:
        return self.quantizer.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def n_frames(self, n_samples: int) -> int:
        """Frames that code ``n_samples`` samples at ``sample_rate`` (:func:`frame_count`)."""
        return frame_count(n_samples, self.hop_length)

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Nominal bitrate in bits/s with ``n_codebooks`` stages (all by default)."""
        n = self.n_codebooks if n_codebooks is None else n_codebooks
        return n * self.quantizer.bits_per_code * self.frame_rate

    def n_codebooks_for(self, kbps: float) -> int:
        """The most stages whose bitrate does not exceed ``kbps`` (at least 1)."""
        per_stage = self.quantizer.bits_per_code * self.frame_rate / 1000.0
        n = int(math.floor(kbps / per_stage + 1e-9))
        if n < 1:
            raise ConfigError(f"bitrate {kbps} kbps is below one stage ({per_stage:g} kbps)")
        return min(n, self.n_codebooks)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def require(ok: bool, key: str, message: str) -> None:
    """ConfigError ``"<key>: <message>"`` unless ``ok`` (every config and recipe check)."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON/TOML-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from plain data, strictly.

    Unknown keys, wrong types and invalid values raise :class:`ConfigError` naming the key
    (dotted path, e.g. ``model.quantizer.codebook_size``). Missing keys take their defaults.
    """
    where = prefix.rstrip(".") or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(_rooted(str(exc), prefix)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _rooted(message: str, prefix: str) -> str:
    """A validation message of a nested dataclass, its key made absolute: a QuantizerConfig check
    says ``quantizer.codebook_size``; read under ``model.quantizer.`` that becomes
    ``model.quantizer.codebook_size``."""
    if not prefix or message.startswith(prefix):
        return message
    parts = prefix.rstrip(".").split(".")
    if message.startswith(parts[-1] + "."):
        return ".".join(parts[:-1] + [message]) if len(parts) > 1 else message
    return prefix + message


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` as type ``tp`` (a dataclass, Literal, union, tuple, list, dict or scalar), strictly."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".")  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(args, value, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return origin(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return dict(value)
    return _coerce_scalar(tp, value, key)


def _coerce_union(args: tuple[Any, ...], value: Any, key: str) -> Any:
    """The first member type of a union that takes ``value`` (None for an Optional's None)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(arg, value, key)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")


#: Scalar types: (accepts the value, what the error says was expected, conversion).
_SCALARS: dict[Any, tuple[typing.Callable[[Any], bool], str, typing.Callable[[Any], Any]]] = {
    bool: (lambda v: isinstance(v, bool), "true/false", lambda v: v),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", lambda v: v),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number", float),
    str: (lambda v: isinstance(v, str), "a string", lambda v: v),
}


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is Any:
        return value
    if tp not in _SCALARS:
        raise ConfigError(f"{key}: unsupported type {tp!r}")
    accepts, expected, convert = _SCALARS[tp]
    if not accepts(value):
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    return convert(value)
