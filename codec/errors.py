"""The project's error types. Every error a user can cause derives from :class:`DiveqError`.

The command line turns a ``DiveqError`` into a one-line message and the exit code of its class
(``exit_code``); anything else is a bug and is allowed to show a traceback.
"""


class DiveqError(Exception):
    """Base class of every error caused by user input (files, options, configs)."""

    exit_code = 1


class UsageError(DiveqError):
    """Bad command-line options or arguments (e.g. an output that exists without ``--force``)."""

    exit_code = 2


class AudioError(DiveqError):
    """An audio file that cannot be read, is not audio, or holds NaN/Inf samples."""

    exit_code = 3


class BitstreamError(DiveqError):
    """A ``.dvq`` stream that is malformed, truncated, corrupted, or made by another model."""

    exit_code = 4


class ModelError(DiveqError):
    """A model file that is missing, corrupted, not a model, or whose config cannot be built."""

    exit_code = 5


class ConfigError(DiveqError):
    """A recipe or config with an unknown key, a wrong type or an invalid value (names the key)."""

    exit_code = 6


class DeviceError(DiveqError):
    """A requested device that is not available (e.g. ``--device cuda`` without a GPU)."""

    exit_code = 7


class TrainingError(DiveqError):
    """Training cannot go on (non-finite loss, missing data, an unusable run directory)."""

    exit_code = 8


class AnchorError(DiveqError):
    """An anchor codec's command-line tool (``opusenc``, ``c2enc``, ...) is missing or failed."""

    exit_code = 9
