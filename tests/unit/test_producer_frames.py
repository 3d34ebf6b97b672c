"""Batch encoding and reply counting, checked against hiredis (no Redis needed)."""

from __future__ import annotations

import io
import random
import socket
import threading

import hiredis
import pytest

from metastream.constants import DATA_FIELD
from metastream.producer import frames as frames_module
from metastream.producer.frames import XaddFrames
from metastream.producer.transport import Transport, TransportError, _read_replies
from metastream.urls import mask_url as redact

BODIES = [b"a", b"", b"\r\n$5\r\n*3\r\n", b"%d %s %%", bytes(range(256)), b"x" * 70_000]


def _parse(data: bytes) -> list[object]:
    reader = hiredis.Reader()
    reader.feed(data)
    commands = []
    while (command := reader.gets()) is not False:
        commands.append(command)
    return commands


@pytest.mark.parametrize("stream", ["metastream:events", "odd %d %s stream", "ünïcode"])
def test_each_body_becomes_one_xadd_with_one_field(stream: str) -> None:
    frame = XaddFrames(stream).encode(BODIES)

    expected = [[b"XADD", stream.encode(), b"*", DATA_FIELD.encode(), b] for b in BODIES]
    assert _parse(frame) == expected


def test_many_body_sizes_keep_their_headers_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_module, "_MAX_CACHED_HEADERS", 8)  # the cache fills and is reset
    frames = XaddFrames("s")
    rng = random.Random(1)
    bodies = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(100)]

    assert [c[4] for c in _parse(frames.encode(bodies))] == bodies  # type: ignore[index]


def test_a_reused_buffer_holds_exactly_the_last_batch() -> None:
    frames = XaddFrames("s")
    buffer = io.BytesIO()
    frames.write(buffer, [b"x" * 1000] * 50)  # a big batch first

    size = frames.write(buffer, [b"small", b"batch"])

    assert _parse(buffer.getvalue()[:size]) == [
        [b"XADD", b"s", b"*", DATA_FIELD.encode(), b"small"],
        [b"XADD", b"s", b"*", DATA_FIELD.encode(), b"batch"],
    ]
    assert frames.write(buffer, []) == 0


def _replies_over_a_socket(replies: bytes, count: int) -> tuple[bytes, int]:
    ours, theirs = socket.socketpair()
    rng = random.Random(len(replies))

    def serve() -> None:  # the replies arrive in pieces of any size
        i = 0
        while i < len(replies):
            step = rng.randrange(1, 7)
            theirs.sendall(replies[i : i + step])
            i += step

    writer = threading.Thread(target=serve)
    writer.start()
    try:
        return _read_replies(ours, count)
    finally:
        writer.join()
        ours.close()
        theirs.close()


def test_replies_are_counted_however_they_are_split() -> None:
    ids = [b"1700000000000-%d" % i for i in range(300)]
    raw = b"".join(b"$%d\r\n%s\r\n" % (len(i), i) for i in ids)

    data, errors = _replies_over_a_socket(raw, len(ids))

    assert (data, errors) == (raw, 0)


def test_error_replies_are_counted() -> None:
    raw = (
        b"$15\r\n1700000000000-0\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        b"$15\r\n1700000000000-1\r\n"
        b"-OOM command not allowed\r\n"
    )

    assert _replies_over_a_socket(raw, 4) == (raw, 2)


def test_send_reports_exactly_the_refused_bodies() -> None:
    ours, theirs = socket.socketpair()
    transport = Transport("s")
    transport._sock = ours  # a connected transport, minus the handshake
    bodies = [b"ok-1", b"bad", b"ok-2"]

    def serve() -> None:
        reader = hiredis.Reader()
        got: list[object] = []
        while len(got) < len(bodies):
            reader.feed(theirs.recv(4096))
            while (command := reader.gets()) is not False:
                got.append(command)
        theirs.sendall(b"$3\r\n1-0\r\n-ERR no\r\n$3\r\n1-1\r\n")

    server = threading.Thread(target=serve)
    server.start()
    try:
        with pytest.raises(TransportError, match="refused 1 of 3") as caught:
            transport.send(bodies)
    finally:
        server.join()
        ours.close()
        theirs.close()
    assert caught.value.unsent == [b"bad"]


def test_a_closed_connection_fails_the_whole_batch() -> None:
    ours, theirs = socket.socketpair()
    transport = Transport("s")
    transport._sock = ours
    theirs.close()

    try:
        with pytest.raises(TransportError, match="lost the connection") as caught:
            transport.send([b"a", b"b"])
    finally:
        ours.close()

    assert caught.value.unsent == [b"a", b"b"]
    assert not transport.connected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6380/0", "redis://localhost:6380/0"),
        ("redis://user:s3cret@host:1/2", "redis://user:***@host:1/2"),
        ("rediss://:s3cret@host", "rediss://:***@host"),
        ("unix:///tmp/redis.sock?db=1", "unix:///tmp/redis.sock?db=1"),
    ],
)
def test_passwords_never_reach_messages(url: str, shown: str) -> None:
    assert redact(url) == shown
