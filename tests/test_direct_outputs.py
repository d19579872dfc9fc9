"""Issue 19, items 1, 3 and 5: outputs that are written through rather than renamed into place.

Standard output (``-``, ``/dev/stdout``, links to ``/proc/self/fd/1``), FIFOs and character devices
get every byte of the output or the command fails: short writes, a full non-blocking pipe, a reader
that goes away (``| head -c 100``, exit 141), ``ulimit -f`` part-way (EFBIG, exit 10), a full device
(ENOSPC, exit 10). Nothing is ever renamed over anything but a regular file, and a folder named like
a file is not taken as folder mode's input. Every case runs the console script in a subprocess, for
every command that writes to ``-`` (encode, decode, transcode), with a tiny model (the coding itself
is not what is tested here).

Pipes are driven deterministically: the test fills the pipe itself and frees one page at a time
(a pipe's room comes in pages), less than the output needs, and only once the command has filled the
room before, so the command's writes must be short (or EAGAIN) whatever the machine's speed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import re
import resource
import socket
import stat
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec import api
from codec.config import ModelConfig, QuantizerConfig
from codec.models.builder import build_codec
from codec.models.weights import save_model

SCRIPT = Path(sys.executable).parent / "diveq-codec"
TIMEOUT = 120
COMMANDS = ("encode", "decode", "transcode")
PAGE = resource.getpagesize()


def tone(channels: int, rate: int, seconds: float) -> np.ndarray:
    """[T, C] float32 (soundfile's layout): an amplitude-modulated tone per channel."""
    t = np.arange(round(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) * np.sin(2 * np.pi * 1.5 * t)
                  for c in range(channels)], axis=1)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model (12 stages of 1024 codes: streams larger than a page from a few seconds), a 6 s
    stereo input, its stream, and what each command writes for them."""
    d = tmp_path_factory.mktemp("direct")
    torch.manual_seed(0)
    model = build_codec(ModelConfig(name="tiny", encoder_dim=4, decoder_dim=16, latent_dim=8,
                                    quantizer=QuantizerConfig(n_codebooks=12, codebook_size=1024,
                                                              codebook_dim=4)))
    f = {"model": d / "tiny.safetensors", "wav": d / "in.wav", "dvq": d / "in.dvq",
         "encode": d / "expected-encode.dvq", "decode": d / "expected-decode.wav",
         "transcode": d / "expected-transcode.dvq"}
    save_model(model, f["model"])
    sf.write(f["wav"], tone(2, 16000, 6.0), 16000, subtype="PCM_16")
    loaded = api.load_model(f["model"], "cpu")
    api.encode_file(loaded, f["wav"], f["dvq"])
    f["encode"].write_bytes(f["dvq"].read_bytes())
    api.decode_file(f["dvq"], f["decode"], loaded)
    api.transcode_file(f["dvq"], f["transcode"], n_codebooks=8)
    assert min(f[c].stat().st_size for c in COMMANDS) > 4096  # more than a page of a pipe
    return f


def args(files: dict[str, Path], command: str, output: object = "-") -> list[str]:
    """The command line of ``command`` writing to ``output``."""
    model = ["--model", str(files["model"])]
    return {"encode": ["encode", str(files["wav"]), str(output), *model],
            "decode": ["decode", str(files["dvq"]), str(output), *model],
            "transcode": ["transcode", str(files["dvq"]), str(output), "-n", "8"]}[command]


def environment(tmp: Path) -> dict[str, str]:
    """The test's environment with $TMPDIR in ``tmp`` (to check that nothing is left there)."""
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TMPDIR": str(tmp)}


def start(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(SCRIPT), *argv], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, **kwargs)  # type: ignore[call-overload]


def run(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(SCRIPT), *argv], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=env, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload]


def one_error(stderr: bytes, code: int, returncode: int, pattern: str) -> None:
    text = stderr.decode("utf-8", "replace")
    where = f"\nexit {returncode}\nstderr: {text}"
    assert returncode == code and "Traceback" not in text, where
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), where


def queued(fd: int) -> int:
    """Bytes waiting in the pipe whose read end is ``fd``."""
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


def fill(fd: int) -> bytes:
    """Fill the pipe whose write end is ``fd`` page by page until it is full; returns what was
    written."""
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    written = []
    try:
        while True:
            try:
                n = os.write(fd, b"f" * PAGE)
            except BlockingIOError:
                break
            written.append(b"f" * n)
    finally:
        os.set_blocking(fd, blocking)
    return b"".join(written)


def wait_until(condition: object, proc: subprocess.Popen[bytes]) -> None:
    """Poll ``condition()`` until it holds or ``proc`` has exited (a deadline guards a hang)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition() and proc.poll() is None:  # type: ignore[operator]
        assert time.monotonic() < deadline, "the command neither wrote nor exited"
        time.sleep(0.005)


def no_part_files(*folders: Path) -> None:
    for folder in folders:
        left = [p.name for p in folder.iterdir() if p.name.endswith(".part")]
        assert not left, (folder, left)


# ------------------------------------------------------------------------------ standard output


@pytest.mark.parametrize("command", COMMANDS)
def test_full_nonblocking_pipe_gets_every_byte(tmp_path: Path, files: dict[str, Path],
                                               command: str) -> None:
    """A non-blocking standard output that never has room for the whole output: every write is
    short or EAGAIN, and the reader still gets every byte, exit 0 (item 1)."""
    expected = files[command].read_bytes()
    if len(expected) <= PAGE:
        pytest.skip(f"the output ({len(expected)} bytes) fits in one page ({PAGE} bytes)")
    read_end, write_end = os.pipe()
    try:
        capacity = len(fill(write_end))
        os.set_blocking(write_end, False)  # shared with the child: its stdout is non-blocking
        proc = start(args(files, command), environment(tmp_path / "tmp"), stdout=write_end)
        os.close(write_end)
        write_end = -1
        received = bytearray()
        while proc.poll() is None:
            wait_until(lambda: queued(read_end) >= capacity, proc)
            if proc.poll() is None:  # free one page: less room than the output needs
                received += os.read(read_end, PAGE)
        os.set_blocking(read_end, True)
        while chunk := os.read(read_end, 1 << 16):
            received += chunk
        stderr = proc.stderr.read() if proc.stderr else b""
        assert proc.wait() == 0 and stderr == b"", stderr.decode()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert bytes(received[capacity:]) == expected and received[:capacity] == b"f" * capacity
    no_part_files(tmp_path / "tmp")


@pytest.mark.parametrize("command", COMMANDS)
def test_reader_that_stops_part_way_is_exit_141(tmp_path: Path, files: dict[str, Path],
                                                command: str) -> None:
    """``| head -c N``: the reader takes a page and goes away after the command wrote part of its
    output; the command ends quietly with 141 instead of 0 (item 1)."""
    if files[command].stat().st_size <= PAGE:
        pytest.skip(f"the output fits in one page ({PAGE} bytes)")
    read_end, write_end = os.pipe()
    try:
        capacity = len(fill(write_end))
        proc = start(args(files, command), environment(tmp_path / "tmp"), stdout=write_end)
        os.close(write_end)
        write_end = -1
        assert len(os.read(read_end, PAGE)) == PAGE
        wait_until(lambda: queued(read_end) >= capacity, proc)  # the command wrote into the room
        os.close(read_end)
        read_end = -1
        stderr = proc.stderr.read() if proc.stderr else b""
        assert proc.wait(timeout=TIMEOUT) == 141 and stderr == b"", (proc.returncode, stderr.decode())
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    no_part_files(tmp_path / "tmp")


def test_head_c_100(tmp_path: Path, files: dict[str, Path]) -> None:
    """The same with the real ``head -c 100`` and an output far larger than a pipe holds."""
    env = environment(tmp_path / "tmp")
    writer = start(args(files, "decode"), env, stdout=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "100"], stdin=writer.stdout, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()
    out, _ = head.communicate(timeout=TIMEOUT)
    stderr = writer.stderr.read()
    assert writer.wait(timeout=TIMEOUT) == 141 and stderr == b"", (writer.returncode, stderr.decode())
    assert out == files["decode"].read_bytes()[:100]


@pytest.mark.parametrize("command", COMMANDS)
def test_file_size_limit_part_way_is_exit_10(tmp_path: Path, files: dict[str, Path],
                                             command: str) -> None:
    """Standard output is a file that reaches ``ulimit -f`` half-way through the output: the first
    write is short, the next fails with EFBIG; exit 10 with the reason, not 0 (item 1)."""
    expected = files[command].read_bytes()
    before = b"x" * len(expected)  # the temporary copy (len(expected)) stays under the limit
    limit = len(before) + len(expected) // 2
    out = tmp_path / "out.bin"
    out.write_bytes(before)

    def limit_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    with open(out, "ab") as stdout:
        result = run(args(files, command), environment(tmp_path / "tmp"), stdout=stdout,
                     preexec_fn=limit_size)
    one_error(result.stderr, 10, result.returncode,
              r"^error: cannot write standard output: File too large \(beyond the file size limit")
    assert out.read_bytes() == before + expected[:limit - len(before)]
    no_part_files(tmp_path / "tmp")


@pytest.mark.parametrize("command", ("decode", "transcode"))  # the same output code as encode's
def test_full_device_is_exit_10(tmp_path: Path, files: dict[str, Path], command: str) -> None:
    """``> /dev/full`` (ENOSPC on the first write); /dev/full named as the output alike."""
    env = environment(tmp_path / "tmp")
    with open("/dev/full", "wb") as full:
        result = run(args(files, command), env, stdout=full)
    one_error(result.stderr, 10, result.returncode,
              "cannot write standard output: No space left on device")
    named = run(args(files, command, "/dev/full"), env, stdout=subprocess.DEVNULL)
    one_error(named.stderr, 10, named.returncode, "cannot write /dev/full: No space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    no_part_files(tmp_path / "tmp")


@contextlib.contextmanager
def small_tmpfs(folder: Path) -> Iterator[bool]:
    """A 4 KiB tmpfs mounted on ``folder`` (True), or False where mounting is not allowed (not root,
    no CAP_SYS_ADMIN, as in most CI containers)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_full_small_file_system(tmp_path: Path, files: dict[str, Path], command: str) -> None:
    """``> small/out`` on a 4 KiB tmpfs: exit 10 (No space left on device), not 0 with the output cut
    short. Needs the right to mount (root); the same short-write path is covered without it by the
    ``ulimit -f`` test above."""
    with small_tmpfs(tmp_path / "small") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs is not allowed here")
        with open(tmp_path / "small" / "out", "wb") as stdout:
            result = run(args(files, command), environment(tmp_path / "tmp"), stdout=stdout)
        one_error(result.stderr, 10, result.returncode,
                  "cannot write standard output: No space left on device")
    no_part_files(tmp_path / "tmp")


# ---------------------------------------------------------------- FIFOs, devices, names of stdout


class Reader(threading.Thread):
    """Reads a FIFO to its end in the background, like ``cat fifo > got &``."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.data = path, b""

    def run(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def finish(self) -> bytes:
        """Wait for the end of input; a reader still waiting means the command left it waiting."""
        self.join(timeout=TIMEOUT / 4)
        if self.is_alive():  # release it before failing, so no thread hangs the test run
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.join(timeout=5)
            raise AssertionError(f"the reader of {self.path} was left waiting")
        return self.data


@pytest.mark.parametrize("command", COMMANDS)
def test_fifo_output_is_written_into_not_replaced(tmp_path: Path, files: dict[str, Path],
                                                  command: str) -> None:
    """An existing FIFO is written into without --force (it is not a file that would be
    overwritten), and stays a FIFO, also with --force; a stream may go to a FIFO of any name (item 3)."""
    env = environment(tmp_path / "tmp")
    outputs = [("f_out.wav" if command == "decode" else "f_out.dvq", [])]
    if command == "transcode":
        outputs.append(("f_out", ["--force"]))
    for name, extra in outputs:
        fifo = tmp_path / name
        os.mkfifo(fifo)
        reader = Reader(fifo)
        reader.start()
        result = run([*args(files, command, fifo), *extra], env, stdout=subprocess.PIPE)
        got = reader.finish()
        assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
        assert got == files[command].read_bytes() and result.stdout == b""
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode), name
    no_part_files(tmp_path, tmp_path / "tmp")


def test_fifo_reader_gets_end_of_file_when_the_command_fails(tmp_path: Path,
                                                             files: dict[str, Path]) -> None:
    """A failed command leaves a FIFO's reader with nothing, as it leaves a pipe's: failing before the
    output is opened (a bad stream header, a bad option) and while coding (a corrupted chunk)."""
    data = files["dvq"].read_bytes()
    (tmp_path / "header.dvq").write_bytes(data[:7])
    corrupted = bytearray(data)
    corrupted[-6] ^= 0x10
    (tmp_path / "chunk.dvq").write_bytes(bytes(corrupted))
    env = environment(tmp_path / "tmp")
    m = ["--model", str(files["model"])]
    cases = [(["decode", str(tmp_path / "header.dvq"), "OUT", *m], 4, "truncated|too short|header"),
             (["decode", str(tmp_path / "chunk.dvq"), "OUT", *m], 4, "CRC mismatch"),
             (["transcode", str(tmp_path / "chunk.dvq"), "OUT", "-n", "1"], 4, "CRC mismatch"),
             (["encode", str(files["wav"]), "OUT", "-b", "99", *m], 2, "above"),
             (["transcode", str(files["dvq"]), "OUT"], 2, "give the bitrate")]
    for i, (argv, code, pattern) in enumerate(cases):
        fifo = tmp_path / f"fifo{i}"
        os.mkfifo(fifo)
        reader = Reader(fifo)
        reader.start()
        result = run([str(fifo) if a == "OUT" else a for a in argv], env)
        assert reader.finish() == b"", argv
        one_error(result.stderr, code, result.returncode, pattern)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    no_part_files(tmp_path, tmp_path / "tmp")


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_stdout_is_standard_output(tmp_path: Path, files: dict[str, Path], command: str) -> None:
    """``/dev/stdout`` is standard output, written like ``-`` (here into the file ``>`` opened), with
    no --force; the system's /dev/stdout link stays (item 3)."""
    with open(tmp_path / "cap.bin", "wb") as stdout:
        result = run(args(files, command, "/dev/stdout"), environment(tmp_path / "tmp"), stdout=stdout)
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    assert (tmp_path / "cap.bin").read_bytes() == files[command].read_bytes()
    assert os.path.islink("/dev/stdout")
    no_part_files(tmp_path, tmp_path / "tmp")


def test_links_to_standard_output(tmp_path: Path, files: dict[str, Path]) -> None:
    """A link to ``/proc/self/fd/1`` with --force writes standard output (appending where ``>>``
    redirects it) and stays a link; ``/dev/fd/1`` into a pipe (item 3)."""
    expected = files["decode"].read_bytes()
    env = environment(tmp_path / "tmp")
    link = tmp_path / "fake_stdout.wav"
    link.symlink_to("/proc/self/fd/1")
    (tmp_path / "log.bin").write_bytes(b"earlier\n")
    with open(tmp_path / "log.bin", "ab") as stdout:
        appended = run([*args(files, "decode", link), "--force"], env, stdout=stdout)
    piped = run(args(files, "decode", "/dev/fd/1"), env, stdout=subprocess.PIPE)
    for result in (appended, piped):
        assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    assert (tmp_path / "log.bin").read_bytes() == b"earlier\n" + expected
    assert piped.stdout == expected
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    no_part_files(tmp_path, tmp_path / "tmp")


def test_character_devices_and_terminals(tmp_path: Path, files: dict[str, Path]) -> None:
    """/dev/null is written into without --force and stays a device; a terminal (a pseudo-terminal
    here), named or as /dev/stdout, is refused before any work (exit 2)."""
    env = environment(tmp_path / "tmp")
    for command in COMMANDS:
        result = run(args(files, command, "/dev/null"), env)
        assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    leader, follower = pty.openpty()
    try:
        named = run(args(files, "decode", os.ttyname(follower)), env)
        with open(os.ttyname(follower), "wb") as terminal:
            as_stdout = run(args(files, "transcode", "/dev/stdout"), env, stdout=terminal)
    finally:
        os.close(leader)
        os.close(follower)
    one_error(named.stderr, 2, named.returncode, "is a terminal")
    one_error(as_stdout.stderr, 2, as_stdout.returncode, "standard output, which is a terminal")
    no_part_files(tmp_path / "tmp")


def test_never_renamed_over_anything_but_a_regular_file(tmp_path: Path, files: dict[str, Path]) -> None:
    """A symbolic link to a file stays a link (the file it leads to gets the output); a link to
    nothing and a socket are refused (exit 2) and stay what they were (item 3). (``transcode``: the
    same output code as every command, and no model to load.)"""
    env = environment(tmp_path / "tmp")
    (tmp_path / "real.dvq").write_bytes(b"old")
    (tmp_path / "link.dvq").symlink_to("real.dvq")
    (tmp_path / "dangling.dvq").symlink_to("missing/x.dvq")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock.dvq"))
    try:
        kept = run(args(files, "transcode", tmp_path / "link.dvq"), env)
        forced = run([*args(files, "transcode", tmp_path / "link.dvq"), "--force"], env)
        dangling = run([*args(files, "transcode", tmp_path / "dangling.dvq"), "--force"], env)
        sock = run([*args(files, "transcode", tmp_path / "sock.dvq"), "--force"], env)
        assert stat.S_ISSOCK(os.lstat(tmp_path / "sock.dvq").st_mode)
    finally:
        server.close()
    one_error(kept.stderr, 2, kept.returncode, r"output exists: .*link\.dvq \(use --force")
    assert forced.returncode == 0 and forced.stderr == b"", forced.stderr.decode()
    assert (tmp_path / "link.dvq").is_symlink() and os.readlink(tmp_path / "link.dvq") == "real.dvq"
    assert (tmp_path / "real.dvq").read_bytes() == files["transcode"].read_bytes()
    one_error(dangling.stderr, 2, dangling.returncode, "symbolic link to a missing file")
    assert os.readlink(tmp_path / "dangling.dvq") == "missing/x.dvq"
    one_error(sock.stderr, 2, sock.returncode, "is a socket")
    no_part_files(tmp_path, tmp_path / "tmp")


# ------------------------------------------------------------------------------------- folders


def test_folder_named_like_a_file_is_not_folder_mode(tmp_path: Path, files: dict[str, Path]) -> None:
    """``encode some_dir.wav out/x.dvq`` (a folder whose name ends in .wav) and ``decode
    dvqs.dvq back.wav``: the output names a file, so a folder input is refused (exit 2, one line)
    instead of creating a folder ``out/x.dvq/`` (item 5). (Folder mode into a folder: test_cli.)"""
    env = environment(tmp_path / "tmp")
    (tmp_path / "some_dir.wav").mkdir()
    (tmp_path / "some_dir.wav" / "a.wav").write_bytes(files["wav"].read_bytes())
    (tmp_path / "dvqs.dvq").mkdir()
    (tmp_path / "dvqs.dvq" / "a.dvq").write_bytes(files["dvq"].read_bytes())
    (tmp_path / "out").mkdir()
    m = ["--model", str(files["model"])]
    encoded = run(["encode", str(tmp_path / "some_dir.wav"), str(tmp_path / "out" / "x.dvq"), *m], env)
    decoded = run(["decode", str(tmp_path / "dvqs.dvq"), str(tmp_path / "back.WAV"), *m], env)
    one_error(encoded.stderr, 2, encoded.returncode, r"some_dir\.wav is a folder, but the output .*x\.dvq")
    one_error(decoded.stderr, 2, decoded.returncode, r"dvqs\.dvq is a folder, but the output .*back\.WAV")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvqs.dvq", "out", "some_dir.wav", "tmp"]
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("how", ["write_all", "flush_stdout"])
def test_a_full_nonblocking_pipe_is_waited_on(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """codec.io.directout in-process: ``write_all`` (the copy of a finished output) and
    ``flush_stdout`` (text printed by ``info``, flushed at the end of every command) wait for room
    in a full non-blocking pipe, and everything arrives. The reader starts only once the writer
    waits, so the EAGAIN is certain."""
    import io

    from codec.io import directout

    waiting = threading.Event()
    wait = directout._wait_writable

    def signalled_wait(fd: int) -> None:
        waiting.set()
        wait(fd)

    monkeypatch.setattr(directout, "_wait_writable", signalled_wait)
    read_end, write_end = os.pipe()
    try:
        capacity = len(fill(write_end))
        os.set_blocking(write_end, False)
        data = bytes(range(256)) * (3 * capacity // 256 + 1) if how == "write_all" else b"info\n" * 99
        if how == "write_all":
            writer = threading.Thread(target=directout.write_all, args=(write_end, data))
        else:
            stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_end, "w", closefd=False)))
            stdout.write(data.decode())
            monkeypatch.setattr(sys, "stdout", stdout)
            writer = threading.Thread(target=directout.flush_stdout)
        writer.start()
        assert waiting.wait(timeout=TIMEOUT)
        received = bytearray()
        while len(received) < capacity + len(data):
            received += os.read(read_end, 1 << 16)
        writer.join(timeout=TIMEOUT)
        assert not writer.is_alive() and bytes(received[capacity:]) == data
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_short_write_is_followed_by_the_rest() -> None:
    """``write_all`` after a short count writes the rest; the error behind the short count (EFBIG
    here) is what the next write reports, and it is raised."""
    from codec.io import directout

    calls: list[int] = []

    def short_then_efbig(fd: int, view: memoryview) -> int:
        calls.append(len(view))
        if len(calls) == 1:
            return len(view) // 3
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(directout.os, "write", short_then_efbig)
        with pytest.raises(OSError) as raised:
            directout.write_all(99, b"x" * 300)
    assert raised.value.errno == errno.EFBIG and calls == [300, 200]
