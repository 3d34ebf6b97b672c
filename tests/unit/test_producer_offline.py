"""The producer when Redis cannot be reached, is stuck, or is not configured (no Redis needed)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import metastream.producer as producer_package
from metastream.config import Settings
from metastream.producer import Producer, ProducerStats, default, sender, transport
from metastream.producer.records import read_spool
from metastream.producer.spool import SUFFIX
from metastream.stack.server import free_port

MakeProducer = Callable[..., Producer]


@pytest.fixture(autouse=True)
def _fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender, "_warned_unreachable", False)


@pytest.fixture
def make_producer(settings: Settings) -> Iterator[MakeProducer]:
    made: list[Producer] = []

    def make(settings_: Settings | None = None, **kwargs: Any) -> Producer:
        producer = Producer(settings_ or settings, **kwargs)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        producer.close(timeout=1)


@pytest.fixture
def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def _spooled(directory: Path) -> list[bytes]:
    return [body for path in sorted(directory.glob(f"*{SUFFIX}")) for body in read_spool(path)]


def _producer_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("metastream.producer") and r.levelno >= logging.WARNING
    ]


def test_public_names() -> None:
    assert sorted(producer_package.__all__) == [
        "Producer",
        "ProducerStats",
        "SetAsideFile",
        "SpoolDrainer",
        "SpoolSummary",
        "flush",
        "get_producer",
        "set_aside_files",
        "spool_summary",
    ]


def test_unreachable_redis_never_blocks_publish_and_events_are_spooled_in_order(
    make_producer: MakeProducer, settings: Settings, closed_port_url: str
) -> None:
    producer = make_producer(redis_url=closed_port_url, stream="s")
    bodies = [b"event-%d" % i for i in range(10_000)]

    started = time.perf_counter()
    for body in bodies:
        producer.publish(body)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0, f"10,000 publishes took {elapsed:.2f} s: publish waited on something"
    assert producer.flush(10) is False  # everything is safe, in the spool, not in Redis
    assert _spooled(settings.spool_dir) == bodies
    stats = producer.stats
    assert (stats.queued, stats.sent, stats.spooled, stats.pending) == (10_000, 0, 10_000, 0)
    assert stats.spool_backlog == 10_000
    assert stats.failed >= 1
    assert stats.dropped == 0
    assert not stats.connected


def test_flush_gives_up_at_once_when_redis_is_unreachable(
    make_producer: MakeProducer, closed_port_url: str
) -> None:
    producer = make_producer(redis_url=closed_port_url)
    producer.publish(b"x")

    started = time.monotonic()
    assert producer.flush(30) is False
    assert time.monotonic() - started < 5


def test_one_warning_per_process_naming_the_spool_and_metastream_up(
    make_producer: MakeProducer,
    settings: Settings,
    closed_port_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="metastream.producer")
    first = make_producer(redis_url=closed_port_url)
    second = make_producer(redis_url=closed_port_url, stream="other")
    for i in range(100):
        first.publish(b"a%d" % i)
        second.publish(b"b%d" % i)
    assert first.flush(5) is False
    assert second.flush(5) is False
    first.publish(b"more")
    assert first.flush(5) is False

    (warning,) = _producer_warnings(caplog)
    message = warning.getMessage()
    assert str(settings.spool_dir) in message
    assert "metastream up" in message
    assert closed_port_url.rsplit("/", 1)[0] in message


def test_without_any_redis_configured_the_warning_says_how_to_start_one(
    make_producer: MakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_producer()  # settings from the `home` fixture: no URL, no stack.json
    producer.publish(b"x")
    assert producer.flush(5) is False

    (warning,) = _producer_warnings(caplog)
    assert "METASTREAM_REDIS_URL is not set" in warning.getMessage()
    assert "`metastream up`" in warning.getMessage()
    assert producer.stats.spooled == 1


def test_queue_over_its_limit_goes_to_the_spool_while_the_sender_is_stuck(
    make_producer: MakeProducer,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server that accepts connections and never answers: the sender hangs in the handshake.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(transport, "SOCKET_TIMEOUT", 1.5)
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    limit = 64 * 1024
    producer = make_producer(settings.with_(max_queue_bytes=limit), redis_url=url)
    bodies = [b"%06d" % i + b"x" * 500 for i in range(4000)]  # ~2 MB, 31 times the limit

    try:
        producer.publish(bodies[0])
        time.sleep(0.2)  # the sender is now waiting for the silent server
        started = time.perf_counter()
        for body in bodies[1:]:
            producer.publish(body)
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 1
        during = producer.stats
        while (during.spooled == 0 or during.pending_bytes > limit) and time.monotonic() < deadline:
            time.sleep(0.01)
            during = producer.stats
        assert not during.connected, "the sender should still be stuck"
        assert producer.flush(10) is False
    finally:
        silent.close()

    assert elapsed < 2.0, f"publish waited while the queue was full ({elapsed:.2f} s)"
    assert during.spooled > 0
    assert during.pending_bytes <= limit, "the overflow spooler did not bring the queue down"
    assert _spooled(settings.spool_dir) == bodies  # nothing lost, in order
    assert any("METASTREAM_MAX_QUEUE_BYTES" in r.getMessage() for r in _producer_warnings(caplog))


def test_publishing_after_close_writes_straight_to_the_spool(
    make_producer: MakeProducer, settings: Settings, closed_port_url: str
) -> None:
    producer = make_producer(redis_url=closed_port_url)
    producer.publish(b"before")
    producer.close(timeout=2)

    producer.publish(b"after-1")
    producer.publish(b"after-2")

    assert _spooled(settings.spool_dir) == [b"before", b"after-1", b"after-2"]
    assert producer.stats.spooled == 3
    assert producer.closed


def test_close_spools_what_is_still_queued(
    make_producer: MakeProducer, settings: Settings, closed_port_url: str
) -> None:
    producer = make_producer(settings.with_(linger_ms=60_000), redis_url=closed_port_url)
    bodies = [b"e%d" % i for i in range(50)]
    for body in bodies:
        producer.publish(body)

    producer.close(timeout=0)  # no time to send: everything goes to the spool

    assert _spooled(settings.spool_dir) == bodies
    assert producer.stats.spooled == 50


def test_an_unwritable_spool_keeps_events_in_memory(
    make_producer: MakeProducer,
    tmp_path: Path,
    closed_port_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    producer = make_producer(redis_url=closed_port_url, spool_dir=blocked / "spool")
    for i in range(20):
        producer.publish(b"e%d" % i)

    assert producer.flush(1) is False
    stats = producer.stats
    assert (stats.spooled, stats.pending, stats.dropped) == (0, 20, 0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "kept in memory" in errors[0].getMessage()


def test_flush_with_nothing_published() -> None:
    producer = Producer(Settings.from_env({"METASTREAM_HOME": "/nonexistent"}))

    assert producer.flush(0) is True
    assert producer.stats == ProducerStats()
    producer.close()


def test_the_process_wide_producer(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setattr(default, "_default", None)
    assert producer_package.flush(0) is True  # none yet: nothing to flush

    first = producer_package.get_producer()
    assert producer_package.get_producer() is first
    assert first.spool_dir == home / "spool"
    first.close(timeout=0)
    second = producer_package.get_producer()
    assert second is not first
    second.close(timeout=0)


def test_publish_copies_bytes_like_bodies_and_refuses_other_types(
    make_producer: MakeProducer, settings: Settings, closed_port_url: str
) -> None:
    producer = make_producer(redis_url=closed_port_url)
    data = bytearray(b"mutable")
    producer.publish(data)  # type: ignore[arg-type]
    data[:] = b"changed"  # what was queued does not change with it
    producer.publish(memoryview(b"view"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="as bytes, got str"):
        producer.publish("text")  # type: ignore[arg-type]

    assert producer.flush(5) is False
    assert _spooled(settings.spool_dir) == [b"mutable", b"view"]
    assert producer.stats.queued == 2
