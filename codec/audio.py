"""The audio functions under the name the README documents (``from codec.audio import read_audio``).

They live in :mod:`codec.io.audio`; this module only re-exports them, so the same objects are reachable
by both names.
"""

from __future__ import annotations

from .io.audio import (
    AUDIO_EXTENSIONS,
    DEFAULT_BLOCK_SIZE,
    INPUT_EXTENSIONS,
    AudioInfo,
    AudioInput,
    AudioWriter,
    StreamResampler,
    atomic_output,
    audio_info,
    check_output,
    iter_blocks,
    open_audio_output,
    open_input,
    output_format,
    read_audio,
    resample,
    write_audio,
)

# the same list as codec.io.audio's __all__
__all__ = ["AUDIO_EXTENSIONS", "INPUT_EXTENSIONS", "DEFAULT_BLOCK_SIZE", "AudioInfo", "AudioInput",
           "open_input", "audio_info", "iter_blocks", "read_audio", "resample", "StreamResampler",
           "check_output", "atomic_output", "output_format", "AudioWriter", "open_audio_output",
           "write_audio"]
