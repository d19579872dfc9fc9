"""``encode --stream`` and ``decode --stream`` as subprocesses: a pipe encoder | decoder fed in small
writes puts out audio while its input is still open, gives what the Python API gives, and the error
rules of the README hold (one ``error:`` line, the exit code of its class, no traceback)."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from codec import api
from codec.models.builder import build_codec
from codec.runtime.realtime import StreamDecoder, StreamEncoder
from codec.models.weights import save_model
from support import speechlike, tiny_causal_config
from test_cli import SCRIPT, TIMEOUT, assert_error, run_many


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("stream") / "causal.safetensors"
    save_model(build_codec(tiny_causal_config(lookahead=3)), path)
    return path


def _pcm(seconds: float) -> bytes:
    return (speechlike(seconds, seed=2) * 32767).astype("<i2").tobytes()


def _expected(model_path: Path, pcm: bytes) -> tuple[bytes, bytes]:
    """(packet stream, decoded s16le) from the Python API, one thread."""
    model = api.load_model(model_path, device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        enc = StreamEncoder(model)
        packets = enc.feed(np.frombuffer(pcm, dtype="<i2")) + enc.flush()
        audio = StreamDecoder(model, enc.session_header).feed_all(packets)
    finally:
        torch.set_num_threads(before)
    decoded = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return enc.session_header + b"".join(packets), decoded


def _read_some(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Whatever ``proc`` has written to its stdout so far (waits up to ``deadline`` for the first byte)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    got = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            if got:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 1 << 16)
        if not chunk:
            break
        got += chunk
    sel.close()
    return got


def test_a_pipe_streams_while_it_records(model_path: Path) -> None:
    """encode --stream | decode --stream, fed 200 bytes at a time: decoded audio comes out before the
    input ends, and all of it equals the Python API's."""
    pcm = _pcm(1.0)
    stream, decoded = _expected(model_path, pcm)
    env = {**os.environ, "NO_COLOR": "1"}
    enc = subprocess.Popen([str(SCRIPT), "encode", "--stream", "-", "-", "--model", str(model_path)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    dec = subprocess.Popen([str(SCRIPT), "decode", "--stream", "-", "-", "--model", str(model_path)],
                           stdin=enc.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert enc.stdout is not None and enc.stdin is not None
    enc.stdout.close()  # the decoder holds the pipe now
    try:
        half = len(pcm) // 2
        for start in range(0, half, 200):
            enc.stdin.write(pcm[start:start + 200])
            enc.stdin.flush()
        early = _read_some(dec, time.monotonic() + TIMEOUT)
        assert len(early) > 0  # audio out while the input is still open
        for start in range(half, len(pcm), 200):
            enc.stdin.write(pcm[start:start + 200])
            enc.stdin.flush()
        enc.stdin.close()
        rest, dec_err = dec.communicate(timeout=TIMEOUT)
        enc.wait(timeout=TIMEOUT)
    finally:
        for proc in (enc, dec):
            if proc.poll() is None:
                proc.kill()
    assert enc.returncode == 0 and dec.returncode == 0, (enc.stderr.read() if enc.stderr else b"") + dec_err
    assert dec_err == b""
    assert early + rest == decoded and len(decoded) == len(pcm)


def test_files_and_errors(model_path: Path, tmp_path: Path) -> None:
    pcm = _pcm(0.5)
    stream, decoded = _expected(model_path, pcm)
    raw, packets = tmp_path / "in.raw", tmp_path / "good.dvqs"
    raw.write_bytes(pcm)
    packets.write_bytes(stream)
    (tmp_path / "cut.dvqs").write_bytes(stream[:-3])  # inside the end packet
    end_at = len(stream) - len(_end_packet(stream, model_path))
    (tmp_path / "noend.dvqs").write_bytes(stream[:end_at])  # the end packet never came
    flipped = bytearray(stream)
    flipped[60] ^= 0x01
    (tmp_path / "flipped.dvqs").write_bytes(bytes(flipped))
    (tmp_path / "x.dvq").write_bytes(b"DVQC" + bytes(40))
    m = ("--model", model_path)
    enc, dec, noend, cut, bad, dvq = run_many(
        ("encode", "--stream", raw, tmp_path / "out.dvqs", *m),
        ("decode", "--stream", packets, tmp_path / "out.raw", *m),
        ("decode", "--stream", tmp_path / "noend.dvqs", tmp_path / "noend.raw", *m),
        ("decode", "--stream", tmp_path / "cut.dvqs", tmp_path / "cut.raw", *m),
        ("decode", "--stream", tmp_path / "flipped.dvqs", tmp_path / "flipped.raw", *m),
        ("decode", "--stream", tmp_path / "x.dvq", tmp_path / "x.raw", *m))
    assert enc.returncode == 0 and (tmp_path / "out.dvqs").read_bytes() == stream, enc.stderr
    assert dec.returncode == 0 and (tmp_path / "out.raw").read_bytes() == decoded, dec.stderr
    assert noend.returncode == 0 and noend.stderr.startswith("warning: ") and "end packet" in noend.stderr
    assert (tmp_path / "noend.raw").stat().st_size >= len(decoded) - 2 * 320 * 2
    assert_error(cut, 4, "truncated")
    assert_error(bad, 4, "CRC mismatch")
    assert_error(dvq, 4, "without --stream")
    assert not (tmp_path / "cut.raw").exists() and not (tmp_path / "flipped.raw").exists()  # atomic files
    exists, named, rate, stray, offline, again = run_many(
        ("encode", "--stream", raw, tmp_path / "out.dvqs", *m),
        ("encode", "--stream", raw, tmp_path / "out.dvq", *m),
        ("encode", "--stream", raw, tmp_path / "r.dvqs", "--rate", "1000", *m),
        ("encode", raw, tmp_path / "o.dvq", "--gain", "3"),
        ("encode", "--stream", raw, tmp_path / "n.dvqs", "--model", "default"),
        ("decode", "--stream", packets, tmp_path / "out.raw", *m))
    assert_error(exists, 2, "exists")
    assert_error(named, 2, "packet stream, not a .dvq")
    assert_error(rate, 3, "1000 Hz")
    assert_error(stray, 2, "go with --stream")
    assert_error(offline, 5, "offline model")  # (without --model: the built-in causal model, tests/test_onnx_stream.py)
    assert_error(again, 2, "exists")


def _end_packet(stream: bytes, model_path: Path) -> bytes:
    from io import BytesIO

    from codec.format.packets import encode_packet, read_packet, read_session

    f = BytesIO(stream)
    session = read_session(f)
    last = None
    while (packet := read_packet(f, session)) is not None:
        last = packet
    assert last is not None
    return encode_packet(session, last)


def test_stdout_stays_quiet_for_a_closed_reader(model_path: Path, tmp_path: Path) -> None:
    """``| head -c``: the reader goes away; exit 141, no message."""
    raw = tmp_path / "in.raw"
    raw.write_bytes(_pcm(2.0))
    result = subprocess.run(f"'{SCRIPT}' encode --stream '{raw}' - --model '{model_path}' | head -c 10 > /dev/null;"
                            " echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.stdout.strip() == "141" and "Traceback" not in result.stderr and "error" not in result.stderr
