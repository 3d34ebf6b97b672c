"""Redis URLs the producer must handle: passwords, ACL users, database numbers, unix sockets."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import redis

from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.producer import Producer, sender
from metastream.stack.server import find_server_binary, free_port, ping

pytestmark = pytest.mark.redis

PASSWORD = "s3cret"


class Secured(NamedTuple):
    port: int
    socket: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A server that wants a password, with an ACL user, on TCP and on a unix socket."""
    directory = tmp_path_factory.mktemp("secured")
    port = free_port()
    sock = directory / "redis.sock"
    process = subprocess.Popen(
        [
            find_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--requirepass",
            PASSWORD,
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(directory / "server.log"),
        ],  # fmt: skip
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    admin_url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while not ping(admin_url, timeout=0.5):
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        admin = redis.Redis.from_url(admin_url)
        admin.execute_command("ACL", "SETUSER", "producer", "on", ">pw", "~*", "+@all")
        admin.close()
        yield Secured(port, sock)
    finally:
        process.terminate()
        process.wait(15)


def _read(url: str, stream: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return [f[DATA_FIELD.encode()] for _, f in client.xrange(stream)]
    finally:
        client.close()


@pytest.mark.parametrize(
    "template",
    [
        "redis://:{password}@127.0.0.1:{port}/0",
        "redis://producer:pw@127.0.0.1:{port}/2",
        "unix://:{password}@{socket}?db=1",
        "unix://{socket}?password={password}&db=3",
        "redis://:{password}@127.0.0.1:{port}/4?protocol=3",
    ],
)
def test_urls_with_credentials_databases_and_sockets(
    secured: Secured, settings: Settings, stream: str, template: str
) -> None:
    url = template.format(password=PASSWORD, port=secured.port, socket=secured.socket)
    producer = Producer(settings, redis_url=url, stream=stream)
    bodies = [b"e%d" % i for i in range(100)]
    try:
        for body in bodies:
            producer.publish(body)
        assert producer.flush(10), producer.stats
    finally:
        producer.close(timeout=1)

    assert _read(url, stream) == bodies


def test_a_wrong_password_is_unreachable_and_never_shown(
    secured: Secured,
    settings: Settings,
    stream: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sender, "_warned_unreachable", False)
    producer = Producer(
        settings, redis_url=f"redis://:wrong-pw@127.0.0.1:{secured.port}/0", stream=stream
    )
    try:
        producer.publish(b"x")
        assert producer.flush(5) is False
        assert producer.stats.spooled == 1
    finally:
        producer.close(timeout=1)

    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "wrong-pw" not in warning.getMessage()
    assert ":***@" in warning.getMessage()
