"""Outputs that are written through a descriptor, never renamed into place: standard output (``-``,
or a name of it such as ``/dev/stdout``), FIFOs and character devices (``/dev/null``, ``/dev/full``).

Such an output cannot be replaced atomically, and renaming a file over it would destroy it (a FIFO
that its reader waits on, a ``/dev/stdout`` link). :mod:`codec.io.fileio` writes the output to a
temporary file first and copies it here when complete, so a failed command sends nothing; the copy
sends every byte or raises:

- :func:`write_all` loops until the whole block is written. A short count (a signal, a pipe with
  little room, a file system that fills up, ``ulimit -f``) is followed by a write of the rest, which
  either goes on or meets the error behind the short count. A non-blocking descriptor (EAGAIN) is
  waited on with ``poll``.
- EPIPE (the reader went away, ``| head``) raises BrokenPipeError, which the command line ends as
  SIGPIPE would (exit 141); any other OSError (ENOSPC, EDQUOT, EFBIG, EIO) is raised for the caller
  to report (exit 10). Bytes sent before an error cannot be taken back: the exit status tells.

:func:`output_kind` tells which kind of output a path names, without opening it. Only the standard
library: the light commands (``transcode``) use it.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

#: Output kinds (:func:`output_kind`).
FILE, STDOUT, DIRECT = "file", "stdout", "direct"
#: Bytes read from the temporary file per write.
COPY_BLOCK = 1 << 20


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def is_standard_output(info: os.stat_result) -> bool:
    """True if ``info`` (an ``os.stat`` result) is the file this process's descriptor 1 is open on."""
    try:
        return _same_inode(info, os.fstat(1))
    except OSError:
        return False


def output_kind(path: str | os.PathLike[str]) -> str:
    """How ``path`` (not ``-``) is written: :data:`FILE` for a regular file, a name not taken yet, or
    a symbolic link to a regular file (the file it points to is replaced atomically); :data:`STDOUT`
    for a symbolic link that leads to this process's standard output (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``, a link to one of them); :data:`DIRECT` for a FIFO or a character device,
    also through links. UsageError for a folder, a socket, a block device or a link to nothing."""
    try:
        link = os.lstat(path)
    except (OSError, ValueError):  # missing (or not reachable: the writer reports why)
        return FILE
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        if stat.S_ISLNK(link.st_mode):
            raise UsageError(f"the output {path} is a symbolic link to a missing file "
                             f"({_link_text(path)}): give the file's own name") from None
        return FILE
    mode = info.st_mode
    if stat.S_ISLNK(link.st_mode) and is_standard_output(info):
        return STDOUT
    if stat.S_ISDIR(mode):
        raise UsageError(f"output is a folder: {path}")
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return DIRECT
    what = "a socket" if stat.S_ISSOCK(mode) else "a block device" if stat.S_ISBLK(mode) else "not a file"
    raise UsageError(f"the output {path} is {what}: give a file, a FIFO, a character device or - "
                     "for standard output")


def _link_text(path: str | os.PathLike[str]) -> str:
    try:
        return f"-> {os.readlink(path)}"
    except OSError:
        return "unreadable"


def link_target(path: str | os.PathLike[str]) -> Path:
    """Where the regular file (or free name) ``path`` is written: ``path`` itself, or for a symbolic
    link the file it leads to (so that the link stays a link). UsageError when that cannot be told
    (the resolved name is not the file the link leads to, e.g. a deleted file's ``/proc`` link)."""
    target = Path(path)
    if not target.is_symlink():
        return target
    real = Path(os.path.realpath(target))
    try:
        same = _same_inode(os.stat(real), os.stat(target))
    except OSError:
        same = False
    if not same:
        raise UsageError(f"cannot tell which file the output {path} leads to ({_link_text(path)}): "
                         "give the file's own name")
    return real


def is_terminal(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a terminal (a character device that says so when opened; FIFOs are not
    opened: that would hand their reader an end-of-file)."""
    try:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def open_direct(path: str | os.PathLike[str]) -> int:
    """Open the FIFO or character device ``path`` for writing (a FIFO waits for its reader);
    returns the descriptor. UsageError for a terminal or a file that is no longer a FIFO or device;
    OSError if it cannot be opened."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise UsageError(f"the output {path} changed while it was opened: give it again")
        if os.isatty(fd):
            raise UsageError(f"the output {path} is a terminal: redirect it to a file or a pipe")
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_reader(path: str | os.PathLike[str]) -> None:
    """If ``path`` is a FIFO, give a reader waiting on it end-of-file (open it for writing without
    waiting, and close it): after a failure before the output was opened, the reader would wait
    forever otherwise. Nothing happens for anything else, or when no reader waits."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError, TypeError):
        return
    os.close(fd)


def _wait_writable(fd: int) -> None:
    """Block until ``fd`` accepts a write (or has an error the next write reports)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.poll()
    else:  # pragma: no cover - platforms without poll
        select.select([], [fd], [fd])


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd``: after a short count the rest, waiting while a
    non-blocking descriptor is full. OSError (BrokenPipeError for EPIPE) if the output fails."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _wait_writable(fd)
            continue
        if n <= 0:  # write(2) returns 0 only for an empty request; never spin on it
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]


def _write_all_buffered(stream: Any, data: bytes | memoryview) -> None:
    """:func:`write_all` for a binary stream without a descriptor (an in-process standard output)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        try:
            n = stream.write(view)
        except BlockingIOError as exc:
            n = exc.characters_written
        if not n:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]
    stream.flush()


def copy_to_descriptor(source: str | os.PathLike[str], fd: int) -> None:
    """Copy the file ``source`` to ``fd`` whole (:func:`write_all`)."""
    with open(source, "rb") as src:
        while block := src.read(COPY_BLOCK):
            write_all(fd, block)


def flush_stdout() -> None:
    """``sys.stdout.flush()`` that waits while a non-blocking standard output is full (the buffer
    keeps what it could not write and the next flush goes on) instead of failing with EAGAIN."""
    if sys.stdout is None:
        return
    while True:
        try:
            sys.stdout.flush()
            return
        except BlockingIOError:
            _wait_writable(sys.stdout.fileno())


def copy_to_stdout(source: str | os.PathLike[str]) -> None:
    """Copy the file ``source`` whole to ``sys.stdout``: through its descriptor when it has one
    (after flushing what was printed before), else through its binary buffer."""
    flush_stdout()
    buffer = sys.stdout.buffer
    try:
        fd = buffer.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        copy_to_descriptor(source, fd)
        return
    with open(source, "rb") as src:
        while block := src.read(COPY_BLOCK):
            _write_all_buffered(buffer, block)


__all__ = ["FILE", "STDOUT", "DIRECT", "COPY_BLOCK", "is_standard_output", "output_kind", "link_target",
           "is_terminal", "open_direct", "release_reader", "write_all", "copy_to_descriptor",
           "flush_stdout", "copy_to_stdout"]
