"""codec/io/fileio.py: part files and their sweeping, same-file checks, write errors, standard output."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from codec.errors import OutputError, UsageError, printable
from codec.io import audio, fileio


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """``ulimit -f`` for this process (soft limit only, restored after; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_part_files_are_locked_while_written_and_never_left(tmp_path: Path) -> None:
    target = tmp_path / "x.dvq"
    with fileio.atomic_output(target) as tmp:
        assert fileio.PART_PATTERN.fullmatch(tmp.name) and tmp.name.startswith(".x.dvq.")
        with open(tmp, "rb") as other:  # a sweeper's view: locked by a live writer
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert fileio.sweep_stale_parts(tmp_path) == [] and tmp.exists()
        tmp.write_bytes(b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dvq"]
    with pytest.raises(OutputError, match=r"cannot write .*y\.dvq: No space left on device"):
        with fileio.atomic_output(tmp_path / "y.dvq"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dvq"]


def test_sweep_removes_only_our_unlocked_part_files(tmp_path: Path) -> None:
    names = {
        "stale": ".song.wav.k2j4_9x0.diveq.part",     # ours, writer gone: removed
        "locked": ".song.dvq.a1b2c3d4.diveq.part",    # ours, writer alive: kept
        "short": ".song.wav.abc.diveq.part",          # not mkstemp's 8 characters: kept
        "other": ".song.wav.k2j4_9x0.part",           # another program's (or an old version's): kept
        "plain": "song.wav",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".dir.x.abcdefgh.diveq.part").mkdir()  # not a regular file: kept
    (tmp_path / ".ln.x.abcdefgh.diveq.part").symlink_to(tmp_path / "song.wav")  # a link: kept
    with open(tmp_path / names["locked"], "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert fileio.sweep_stale_parts(tmp_path) == [names["stale"]]
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert names["stale"] not in remaining and len(remaining) == 6
    assert fileio.sweep_stale_parts(tmp_path / "missing") == []


def test_same_file_checks(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    src.write_bytes(b"audio")
    os.link(src, tmp_path / "hard.dvq")
    (tmp_path / "soft.dvq").symlink_to(src)
    for out in (src, tmp_path / "." / "a.wav", tmp_path / "hard.dvq", tmp_path / "soft.dvq"):
        with pytest.raises(UsageError, match="is the input"):
            fileio.check_distinct(src, out)
    fileio.check_distinct(src, tmp_path / "new.dvq")  # a missing output never clashes
    fileio.check_distinct("-", "-")
    (tmp_path / "b.dvq").write_bytes(b"audio")  # same content, another file
    fileio.check_distinct(src, tmp_path / "b.dvq")


def test_write_errors_become_output_errors(tmp_path: Path) -> None:
    """``ulimit -f`` (EFBIG) through Python's writes and through libsndfile's: one OutputError with
    the system's reason, and no file left (issue item 1)."""
    with file_size_limit(1000):
        with pytest.raises(OutputError, match=r"cannot write .*big\.bin: File too large"):
            with fileio.atomic_output(tmp_path / "big.bin") as tmp:
                tmp.write_bytes(b"\0" * 5000)
        with pytest.raises(OutputError, match=r"cannot write .*big\.wav: File too large"):
            audio.write_audio(tmp_path / "big.wav", np.zeros((1, 16000), np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


class _FullStdout(io.TextIOWrapper):
    """A standard output whose device is full (like ``> /dev/full``)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO())

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> io.RawIOBase:
        class Full(io.RawIOBase):
            def write(self, data: bytes) -> int:
                raise OSError(errno.ENOSPC, "No space left on device")

        return Full()


def test_stdout_output_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fileio.tempfile, "tempdir", str(tmp_path))
    out = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(out))
    with fileio.atomic_output("-") as tmp:
        tmp.write_bytes(b"whole stream")
    assert out.getvalue() == b"whole stream"
    with pytest.raises(RuntimeError):
        with fileio.atomic_output("-") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("the encoder failed")
    assert out.getvalue() == b"whole stream"  # nothing of the failed run reached stdout
    monkeypatch.setattr("sys.stdout", _FullStdout())
    monkeypatch.setattr(fileio, "silence_stdout", lambda: None)
    with pytest.raises(OutputError, match="cannot write standard output: No space left on device"):
        with fileio.atomic_output("-") as tmp:
            tmp.write_bytes(b"data")
    assert list(tmp_path.iterdir()) == []


def test_spool_reads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fileio.tempfile, "tempdir", str(tmp_path))
    with fileio.spool_to_file(io.BytesIO(b"x" * 3_000_000), "a pipe", UsageError) as path:
        assert path.read_bytes() == b"x" * 3_000_000 and path.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_printable_escapes_control_and_bidi_characters() -> None:
    assert printable("ok é ✓ 中") == "ok é ✓ 中"
    assert printable("a\u202eb\x1b[2J\u200b\n") == "a\\u202eb\\x1b[2J\\u200b\\x0a"


def test_outputs_get_normal_permissions_even_when_the_writer_replaces_the_part_file(tmp_path: Path) -> None:
    """Part files are created 0o600; the output gets 0o666 minus the umask, also when the writer puts a
    new file at the part file's path (as safetensors does) instead of writing into it."""
    import torch
    from safetensors.torch import save_file

    umask = os.umask(0o022)
    try:
        in_place, replaced = tmp_path / "a.bin", tmp_path / "b.safetensors"
        with fileio.atomic_output(in_place) as tmp:
            tmp.write_bytes(b"data")
        with fileio.atomic_output(replaced) as tmp:
            inode = tmp.stat().st_ino
            save_file({"w": torch.zeros(3)}, str(tmp))
            assert tmp.stat().st_ino != inode  # the case this test is about
    finally:
        os.umask(umask)
    assert (in_place.stat().st_mode & 0o777) == 0o644
    assert (replaced.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.safetensors"]
