"""The project's error types. Every error a user can cause derives from :class:`DiveqError`.

The command line turns a ``DiveqError`` into a one-line message and the exit code of its class
(``exit_code``); anything else is a bug and is allowed to show a traceback. Warnings about input the
project still accepts (e.g. a truncated WAV) are :class:`DiveqWarning`, shown as one ``warning:`` line.
:func:`printable` makes text from files safe to print (no control or bidi characters).
"""

import unicodedata

#: Unicode categories escaped by :func:`printable`: controls, format characters (bidi overrides,
#: zero-width joiners), surrogates, private use, unassigned, line and paragraph separators.
_UNPRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def printable(text: str) -> str:
    """``text`` with every control, format (e.g. U+202E RIGHT-TO-LEFT OVERRIDE), surrogate, private-use,
    unassigned or line/paragraph-separator character written as a ``\\xNN`` / ``\\uNNNN`` /
    ``\\UNNNNNNNN`` escape, so that text read from a file cannot move the cursor, reorder a terminal
    line or hide characters."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in _UNPRINTABLE:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


class DiveqWarning(UserWarning):
    """Input that is accepted but probably not what the user meant (e.g. a WAV whose header claims
    more samples than the file holds). The command line prints it as one ``warning: ...`` line."""


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


class MissingExtrasError(UsageError):
    """A command or feature that needs the optional training extras (``pip install
    'diveq-codec[train]'``: descript-audio-codec, librosa, pesq, pystoi, matplotlib, ...), which are
    not installed. See :mod:`codec.extras`."""


class AnchorError(DiveqError):
    """An anchor codec's command-line tool (``opusenc``, ``c2enc``, ...) is missing or failed."""

    exit_code = 9


class OutputError(DiveqError):
    """An output that could not be written: disk full (ENOSPC), quota exceeded (EDQUOT), file too
    large for the file system or the ``ulimit -f`` limit (EFBIG), an I/O error (EIO), a read-only file
    system, no permission. Nothing partial is left behind."""

    exit_code = 10


class Terminated(BaseException):
    """The process received a termination signal (SIGTERM, SIGHUP) while a command ran.

    A ``BaseException`` like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it and
    every ``finally`` / atomic-write cleanup runs on the way out. ``exit_code`` is 128 + the signal
    number, as shells report it (143 for SIGTERM).
    """

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.exit_code = 128 + signum
