"""Files in and out without surprises: atomic outputs, no stale temporary files, never the input as
the output, ``-`` for standard input and output, write errors as :class:`~codec.errors.OutputError`.

- :func:`atomic_output`: every file the project writes is first written to a *part file* in the
  destination folder and renamed over the target only when complete, so an output is either the whole
  new file or untouched. A symbolic link stays a link: the file it leads to is replaced. Nothing is
  ever renamed over anything but a regular file. A ``-`` output, a name of standard output
  (``/dev/stdout``), a FIFO or a character device is written to a part file in the temporary folder
  and copied into it when complete, every byte or an error (:mod:`codec.io.directout`); nothing reaches
  it from a failed run.
- Part files are named ``.NAME.XXXXXXXX.diveq.part`` and held under an exclusive ``flock`` while they
  are written. A process killed with SIGKILL cannot remove its part file, but the kernel releases its
  lock; every later write into that folder removes the unlocked part files of ours it finds
  (:func:`sweep_stale_parts`). Live writers keep their lock, so no age threshold is needed and a long
  write is never swept. (On a file system without ``flock``, nothing is swept.)
- :func:`check_distinct`: the input and the output are never the same file (same device and inode,
  which also catches hard and symbolic links, or the same resolved path), whatever ``--force`` says.
- :func:`spool_to_file`: standard input, a FIFO or a character device can be read only once; it is
  copied once to a part file in the temporary folder, which can be read as often as needed.
- Write failures (disk full, quota, ``ulimit -f``, I/O errors, read-only file systems, permissions)
  raise OutputError with the system's reason. A reader of standard output (or of a FIFO) that stops
  reading (``| head``) gives BrokenPipeError, which the command line ends quietly (exit 141, as
  SIGPIPE would).

Only the standard library: commands that do not need audio or torch (``transcode``) stay light.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DiveqError, OutputError, UsageError
from .directout import (
    COPY_BLOCK,
    DIRECT,
    STDOUT,
    copy_to_descriptor,
    copy_to_stdout,
    flush_stdout,
    is_terminal,
    link_target,
    open_direct,
    output_kind,
    release_reader,
)

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so stale part files are never swept
    fcntl = None  # type: ignore[assignment]

#: The name meaning standard input (for inputs) or standard output (for outputs).
STDIO = "-"
#: Suffix of our part files; with the random part it is what :func:`sweep_stale_parts` matches.
PART_SUFFIX = ".diveq.part"
#: ``.NAME.XXXXXXXX.diveq.part``: tempfile.mkstemp's 8 random characters between NAME and the suffix.
PART_PATTERN = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX))
#: Characters of the target's name kept in its part file's name (file names are limited to 255 bytes).
_NAME_CHARS = 120

_HINTS = {
    errno.EFBIG: "beyond the file size limit, ulimit -f, or the file system's largest file",
    errno.EROFS: "the file system is mounted read-only",
}


def is_stdio(path: object) -> bool:
    """True for ``-`` (standard input or output)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path) == STDIO


def describe_os_error(exc: OSError) -> str:
    """The system's reason for ``exc`` (e.g. ``No space left on device``), with a hint where useful."""
    text = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    hint = _HINTS.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text


def _where(target: str | os.PathLike[str]) -> str:
    return "standard output" if is_stdio(target) else str(target)


def write_error(target: str | os.PathLike[str], exc: OSError) -> OutputError:
    """OutputError ``cannot write TARGET: reason`` for an OSError raised while writing ``target``."""
    return OutputError(f"cannot write {_where(target)}: {describe_os_error(exc)}")


def is_stream_output(path: str | os.PathLike[str]) -> bool:
    """True for an output that is written through, not replaced: ``-``, a name of standard output
    (``/dev/stdout``), a FIFO or a character device (also through links). Such outputs take any name:
    no file is replaced. UsageError for a path that cannot be an output (a folder, a socket, ...)."""
    return is_stdio(path) or output_kind(path) in (STDOUT, DIRECT)


def as_path(value: object, name: str) -> str | os.PathLike[str]:
    """``value`` if it is a path (str or os.PathLike); UsageError otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{name} must be a path (or - for standard input/output), got "
                         f"{type(value).__name__}")
    return value


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Raise UsageError if ``path`` cannot be an output, or is a file that exists and not ``force``;
    returns it as a Path.

    ``-`` (standard output) and names of it (``/dev/stdout``) are refused when standard output is a
    terminal (binary data would garble it). A FIFO or a character device is written into, not
    replaced, so it needs no ``force``. A folder, a socket, a block device or a symbolic link to
    nothing is refused (:func:`codec.io.directout.output_kind`).
    """
    if is_stdio(path):
        if sys.stdout is None or sys.stdout.isatty():
            raise UsageError("standard output is a terminal: redirect it to a file or a pipe, or give "
                             "an output file name instead of -")
        return Path(STDIO)
    target = Path(path)
    kind = output_kind(target)
    if kind == STDOUT:
        if os.isatty(1):
            raise UsageError(f"the output {target} is standard output, which is a terminal: redirect "
                             "it to a file or a pipe")
    elif kind == DIRECT:
        if is_terminal(target):
            raise UsageError(f"the output {target} is a terminal: redirect it to a file or a pipe")
    elif target.exists() and not force:
        raise UsageError(f"output exists: {target} (use --force to overwrite)")
    return target


def check_distinct(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> None:
    """Raise UsageError if the output is the input: the same file (device and inode: hard links and
    symbolic links included) or the same resolved path. ``-`` and missing files never clash."""
    if is_stdio(input_path) or is_stdio(output_path):
        return
    try:
        a, b = os.stat(input_path), os.stat(output_path)
    except (OSError, ValueError):
        same = False
    else:
        same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    if not same:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            same = Path(input_path).resolve() == Path(output_path).resolve()
    if same:
        raise UsageError(f"the output {output_path} is the input {input_path} (the same file): "
                         "choose another output; --force never overwrites the input")


def _default_file_mode() -> int:
    """Permission bits of a file created normally here (0o666 minus the umask): part files are created
    0o600, so an atomically written output gets these before it is renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------------------------------------
# Part files


def _same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _create_part(folder: Path, name: str) -> tuple[int, Path]:
    """Create and lock a new part file for ``name`` in ``folder``; returns (fd, path). OSError if the
    folder cannot be written."""
    for _ in range(100):
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:_NAME_CHARS]}.", suffix=PART_SUFFIX, dir=folder)
        if fcntl is None:
            return fd, Path(tmp)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a sweeper is looking at it this very moment: take another name
            os.close(fd)
            continue
        except OSError:  # no locks on this file system: write unlocked (and nothing is swept here)
            return fd, Path(tmp)
        if _same_file(fd, tmp):  # not removed by a sweeper between mkstemp and flock
            return fd, Path(tmp)
        os.close(fd)
    raise OSError(errno.EEXIST, f"could not create a temporary file in {folder}")


def sweep_stale_parts(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the part files of ours in ``folder`` whose writer is gone (killed with SIGKILL, a power
    cut); returns their names. A part file is ours if its name matches :data:`PART_PATTERN`, it is a
    regular file and it belongs to this user; its writer is gone if nobody holds its lock. Files that
    are locked, not ours, or cannot be inspected are left alone; errors are ignored."""
    removed: list[str] = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not PART_PATTERN.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer is alive
            if _same_file(fd, entry.path):
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def _part_file(folder: Path, name: str, target: str | os.PathLike[str]) -> Iterator[tuple[int, Path]]:
    """A locked part file in ``folder`` (stale ones swept first); removed on exit unless it was
    renamed (then its name is no longer ours to remove)."""
    sweep_stale_parts(folder)
    try:
        fd, tmp = _create_part(folder, name)
    except OSError as exc:
        raise OutputError(f"cannot create a temporary file in {folder} for {target}: "
                          f"{describe_os_error(exc)}") from None
    try:
        yield fd, tmp
    finally:
        if _same_file(fd, tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Outputs


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Write a file atomically: yields a part file's path in the same folder; on success it is flushed
    to disk and renamed to ``path``; on any error (KeyboardInterrupt and termination included) it is
    removed. ``-`` writes to standard output once the whole output is ready.

    An existing ``path`` is refused with UsageError unless ``force`` (checked before any work and again
    before the rename); the original file is untouched until the rename. A symbolic link stays: the
    file it leads to is replaced. The file ends up with the permissions of a normally created one
    (0o666 minus the umask). ``-``, a name of standard output, a FIFO (opened first: it waits for
    its reader) or a character device gets the finished output copied in whole, with no ``force``
    needed (:func:`check_output`). An OSError while writing (disk full, quota, ``ulimit -f``, I/O
    error, ...) becomes OutputError. Every file the project writes (audio, streams, models,
    checkpoints, eval reports) goes through here.
    """
    if is_stdio(path):
        check_output(STDIO)
        with _copied_output(STDIO, None) as tmp:
            yield tmp
        return
    target = check_output(path, force)
    kind = output_kind(target)
    if kind == STDOUT:
        with _copied_output(target, 1) as tmp:
            yield tmp
        return
    if kind == DIRECT:
        try:
            fd = open_direct(target)
        except OSError as exc:
            raise write_error(target, exc) from None
        try:
            with _copied_output(target, fd, to_stdout=False) as tmp:
                yield tmp
        finally:
            os.close(fd)
        return
    real = link_target(target)
    folder = real.parent
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {folder}")
    with _part_file(folder, real.name, target) as (_, tmp):
        try:
            yield tmp
            _seal(tmp)
            if real.exists() and not force:
                raise UsageError(f"output exists: {target} (use --force to overwrite)")
            _check_replaceable(real, target)
            os.replace(tmp, real)
        except OSError as exc:
            raise write_error(target, exc) from None
    with contextlib.suppress(OSError):  # make the rename durable; not possible on every platform
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def released_on_failure(path: object) -> Iterator[None]:
    """Run the body; if it fails and ``path`` is a FIFO, a reader waiting on it gets end-of-file
    (:func:`codec.io.directout.release_reader`) instead of waiting forever for a writer that never
    comes: a failed command leaves a FIFO's reader as it leaves a pipe's, with nothing."""
    try:
        yield
    except BaseException:
        if isinstance(path, (str, os.PathLike)) and not is_stdio(path):
            release_reader(path)
        raise


def _check_replaceable(real: Path, target: Path) -> None:
    """UsageError unless ``real`` is a regular file or free: what took its place while the output was
    written (a FIFO, a link, a folder) is never renamed over."""
    try:
        mode = os.lstat(real).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UsageError(f"the output {target} is no longer a regular file (it changed while it was "
                         "written): nothing was written")


def _seal(tmp: Path) -> None:
    """Flush the part file to disk and give it a normal file's permissions. The file is opened by name:
    writers that replace the file at ``tmp`` with a new one (safetensors writes a new file and renames
    it) leave the part file's own descriptor on the old one."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fchmod(fd, _default_file_mode())
    finally:
        os.close(fd)


def silence_stdout() -> None:
    """After a failed write to standard output: point it at /dev/null, so that the interpreter's own
    flush at exit does not print a second error (Python's documented SIGPIPE advice)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _copied_output(target: str | os.PathLike[str], fd: int | None,
                   to_stdout: bool = True) -> Iterator[Path]:
    """A part file in the temporary folder, copied whole to ``fd`` (None: ``sys.stdout``) when the
    work is done; the part file is removed either way. A reader that went away raises
    BrokenPipeError; any other write error OutputError naming ``target``. ``to_stdout``: ``fd`` is
    standard output (printed text is flushed before, and it is silenced after a failure)."""
    folder = Path(tempfile.gettempdir())
    with _part_file(folder, "stdout" if to_stdout else Path(target).name, target) as (_, tmp):
        try:
            yield tmp
        except OSError as exc:
            raise OutputError(f"cannot write the temporary copy of {_where(target)} in {folder}: "
                              f"{describe_os_error(exc)}") from None
        try:
            if fd is None:
                copy_to_stdout(tmp)
            else:
                if to_stdout:
                    flush_stdout()  # what was printed before goes first
                copy_to_descriptor(tmp, fd)
        except BrokenPipeError:  # the reader stopped reading (``| head``): not a failure of ours
            if to_stdout:
                silence_stdout()
            raise
        except OSError as exc:
            if to_stdout:
                silence_stdout()
            raise write_error(target, exc) from None


# ---------------------------------------------------------------------------------------------
# Inputs that can be read only once


@contextlib.contextmanager
def spool_to_file(reader: BinaryIO, what: str,
                  read_error: Callable[[str], DiveqError]) -> Iterator[Path]:
    """Copy everything ``reader`` yields (standard input, a FIFO) to a part file in the temporary
    folder; yields its path (removed on exit). A read error raises ``read_error(message)``; a write
    error (temporary folder full) raises OutputError."""
    folder = Path(tempfile.gettempdir())
    with _part_file(folder, "input", what) as (fd, tmp):
        with open(fd, "wb", closefd=False) as out:
            while True:
                try:
                    block = reader.read(COPY_BLOCK)
                except OSError as exc:
                    raise read_error(f"cannot read {what}: {describe_os_error(exc)}") from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as exc:
                    raise OutputError(f"cannot copy {what} to a temporary file in {folder}: "
                                      f"{describe_os_error(exc)}") from None
        yield tmp


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` (symbolic links followed) is a regular file, i.e. can be read more than once
    and seeked; False for FIFOs, character devices (``/dev/stdin`` on a terminal or pipe), sockets."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


__all__ = ["STDIO", "PART_SUFFIX", "PART_PATTERN", "is_stdio", "is_stream_output", "as_path",
           "describe_os_error", "write_error", "check_output", "check_distinct", "sweep_stale_parts",
           "atomic_output", "released_on_failure", "spool_to_file", "silence_stdout", "is_regular_file"]
