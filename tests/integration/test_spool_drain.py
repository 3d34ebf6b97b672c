"""Nothing waits for a later producer: SIGKILL, exits with Redis down, and poison in the spool.

issue 7, findings 1-3: a producer killed by SIGKILL leaves its events in
memory-mapped segments, and the stack's drainer sends them; a process that
exits while the stack is down leaves spool files, and the drainer sends
them without any other producer starting; an event Redis will not take is
set aside and does not hold back the files behind it. Every experiment
counts event ids: what was published against what arrived.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from metastream.cli import main as cli_main
from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.errors import StoreError
from metastream.producer import (
    Producer,
    SpoolDrainer,
    set_aside_files,
    spool_summary,
)
from metastream.producer.records import FILE_HEADER, FIRST_RECORD, MAGIC, encode_records
from metastream.producer.spool import SEGMENT_SUFFIX, SUFFIX
from metastream.schemas import decode_event
from metastream.stack.server import RedisServer, free_port
from tests.integration.child_producers import env_for, fresh_warning, run_script
from tests.streams import (
    consumer_settings,
    eventually,
    log_ids,
    run_events,
    start_consumer_process,
    stop_process,
    wait_for_sync,
)

pytestmark = pytest.mark.redis

__all__ = ["env_for", "fresh_warning"]  # fixtures, used by name


@pytest.fixture
def drainer_for(stream: str) -> Iterator[Callable[[Path, str], SpoolDrainer]]:
    made: list[SpoolDrainer] = []

    def make(spool_dir: Path, url: str) -> SpoolDrainer:
        drainer = SpoolDrainer(spool_dir, url, stream, interval=0.05)
        made.append(drainer)
        return drainer

    yield make
    for drainer in made:
        drainer.stop()


def _log_ids_once_ready(db: Path) -> list[bytes]:
    try:
        return log_ids(db)
    except StoreError:  # created, not yet initialised by the consumer
        return []


def ids_in_stream(client: redis.Redis, stream: str) -> Counter[bytes]:
    return Counter(
        decode_event(fields[DATA_FIELD.encode()]).event_id for _, fields in client.xrange(stream)
    )


# A script that publishes a RunStarted and n events on that run, writes their ids to a
# file, and then dies as the OOM killer would make it: SIGKILL, no flush, no atexit.
_PUBLISH_AND_DIE = """
import os, signal, sys
from metastream.config import Settings
from metastream.producer import Producer
from tests.streams import run_events
from metastream.schemas import decode_event

n, ids_file, segment_bytes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
bodies = run_events(n)
with open(ids_file, "w") as out:
    out.write("\\n".join(decode_event(b).event_id.hex() for b in bodies))
producer = Producer(Settings.from_env(), segment_bytes=segment_bytes)
for body in bodies:
    producer.publish(body)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_producer_killed_by_sigkill_loses_nothing_and_the_stack_sends_its_segments(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
    tmp_path: Path,
) -> None:
    n = 5_000
    ids_file = tmp_path / "ids"
    # Redis is up, but nothing is sent before the kill: the batch never fills, the
    # linger never ends. Small segments, so that the events span several of them.
    env = env_for(redis_url, METASTREAM_LINGER_MS="600000", METASTREAM_BATCH_SIZE="1000000")
    done = run_script(_PUBLISH_AND_DIE, str(n), str(ids_file), str(64 * 1024), env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr
    published = _ids(ids_file)
    assert len(published) == n
    assert redis_client.xlen(stream) == 0, "the events were sent before the kill"
    segments = list(settings.spool_dir.glob(f"*{SEGMENT_SUFFIX}"))
    assert len(segments) > 1, "the events should span several segments"
    assert spool_summary(settings.spool_dir).events == n  # the orphans are counted

    s = consumer_settings(settings, stream, redis_url)
    # The stack's consumer drains this machine's spool itself: no other producer starts.
    consumer = start_consumer_process(s, tmp_path / "consumer.log")
    try:
        wait_for_sync(lambda: len(_log_ids_once_ready(s.db)) >= n, 30, consumer)
    finally:
        stop_process(consumer)

    in_log = log_ids(s.db)
    assert len(in_log) == len(set(in_log)), "an event is in the log twice"
    assert set(in_log) == set(published)  # the RunStarted published first included
    assert not list(settings.spool_dir.glob(f"*{SEGMENT_SUFFIX}"))
    assert set(ids_in_stream(redis_client, stream)) == set(published)


_PUBLISH_AND_EXIT = """
import sys
from metastream.producer import get_producer
from metastream.schemas import decode_event
from tests.streams import run_events

bodies = run_events(int(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    out.write("\\n".join(decode_event(b).event_id.hex() for b in bodies))
for body in bodies:
    get_producer().publish(body)
"""


def _publish_and_exit(
    env_for: Callable[..., dict[str, str]], n: int, ids_file: Path
) -> list[bytes]:
    """Run a script that publishes ``n`` events and exits while Redis is down; their ids."""
    env = env_for(f"redis://127.0.0.1:{free_port()}/0")
    done = run_script(_PUBLISH_AND_EXIT, str(n), str(ids_file), env=env)
    assert done.returncode == 0, done.stderr
    return _ids(ids_file)


def _ids(ids_file: Path) -> list[bytes]:
    """The event ids a script wrote, one in hex a line."""
    return [bytes.fromhex(line) for line in ids_file.read_text().split()]


def test_spool_files_of_exited_processes_are_sent_by_the_stack_without_another_producer(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    stream: str,
    tmp_path: Path,
) -> None:
    published: list[bytes] = []
    for i in range(2):  # two scripts, run while the stack is down
        published += _publish_and_exit(env_for, 3000, tmp_path / f"ids-{i}")
    summary = spool_summary(settings.spool_dir)
    assert (summary.events, summary.set_aside) == (6000, 0)
    assert summary.files >= 2
    assert summary.oldest_age_s is not None

    # The stack comes up (its consumer, with this METASTREAM_HOME); no producer starts.
    s = consumer_settings(settings, stream, redis_url)
    consumer = start_consumer_process(s, tmp_path / "consumer.log")
    try:
        wait_for_sync(lambda: len(_log_ids_once_ready(s.db)) >= 6000, 30, consumer)
        assert eventually(lambda: not list(settings.spool_dir.glob(f"*{SUFFIX}")))
    finally:
        stop_process(consumer)
    in_log = log_ids(s.db)
    assert len(in_log) == len(set(in_log)), "an event is in the log twice"
    assert set(in_log) == set(published)
    assert spool_summary(settings.spool_dir).events == 0


def test_the_drainer_alone_sends_what_exited_processes_left(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
    tmp_path: Path,
    drainer_for: Callable[[Path, str], SpoolDrainer],
) -> None:
    published = _publish_and_exit(env_for, 3000, tmp_path / "ids")
    drainer = drainer_for(settings.spool_dir, redis_url)
    drainer.start()
    assert eventually(lambda: len(ids_in_stream(redis_client, stream)) == 3000, timeout=30)
    assert set(ids_in_stream(redis_client, stream)) == set(published)
    assert eventually(lambda: not list(settings.spool_dir.glob(f"*{SUFFIX}")))
    assert drainer.sent >= 3000


def _write_spool(directory: Path, name: str, bodies: list[bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(FILE_HEADER.pack(MAGIC, FIRST_RECORD) + encode_records(bodies))
    return path


@pytest.fixture
def strict_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own, whose limits the test changes."""
    server = RedisServer(tmp_path / "strict-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_event_redis_refuses_is_set_aside_and_the_files_behind_it_are_sent(
    settings: Settings,
    strict_redis: RedisServer,
    stream: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    drainer_for: Callable[[Path, str], SpoolDrainer],
) -> None:
    client = redis.Redis.from_url(strict_redis.url)
    client.config_set("proto-max-bulk-len", 1024 * 1024)  # the smallest it takes: 1 MiB
    first, second = run_events(400), run_events(300)
    oversized = b"\x00" * (2 * 1024 * 1024)  # over the server's limit
    spool = settings.spool_dir
    _write_spool(
        spool, "00000000000000000001-1-aaaa.spool", first[:150] + [oversized] + first[150:]
    )
    _write_spool(spool, "00000000000000000002-1-bbbb.spool", second)
    drainer = drainer_for(spool, strict_redis.url)

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        drainer.drain_once()

    arrived = [f[DATA_FIELD.encode()] for _, f in client.xrange(stream)]
    assert set(arrived) == set(first + second)  # all but the one (twice is fine: deduplicated)
    (aside,) = set_aside_files(spool)
    assert aside.events == 1
    assert "closed the connection" in aside.reason or "bulk" in aside.reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(aside.path.name in w and "could not be sent" in w for w in warnings)
    summary = spool_summary(spool)
    assert (summary.files, summary.events, summary.set_aside) == (0, 0, 1)

    assert cli_main(["spool", "list"]) == 0
    listed = capsys.readouterr().out
    assert aside.path.name in listed
    assert "no spooled events" in listed

    client.config_set("proto-max-bulk-len", 512 * 1024 * 1024)  # the cause is fixed
    assert cli_main(["spool", "retry", "--all"]) == 0
    drainer.drain_once()
    arrived = [f[DATA_FIELD.encode()] for _, f in client.xrange(stream)]
    assert set(arrived) == {*first, *second, oversized}
    assert set_aside_files(spool) == []
    assert not list(spool.iterdir())
    client.close()


def test_the_producers_own_resend_sets_aside_the_same_way(
    settings: Settings,
    strict_redis: RedisServer,
    stream: str,
) -> None:
    client = redis.Redis.from_url(strict_redis.url)
    client.config_set("proto-max-bulk-len", 1024 * 1024)
    first, second = run_events(200), run_events(100)
    oversized = b"\x01" * (2 * 1024 * 1024)
    spool = settings.spool_dir
    _write_spool(spool, "00000000000000000001-1-aaaa.spool", [*first[:50], oversized, *first[50:]])
    _write_spool(spool, "00000000000000000002-1-bbbb.spool", second)

    producer = Producer(settings, redis_url=strict_redis.url, stream=stream)  # claims both
    try:
        producer.publish(b"live")
        assert eventually(lambda: client.xlen(stream) >= 301, timeout=20)
        assert producer.flush(10)
    finally:
        producer.close(timeout=1)

    arrived = [f[DATA_FIELD.encode()] for _, f in client.xrange(stream)]
    assert set(arrived) == {*first, *second, b"live"}
    (aside,) = set_aside_files(spool)
    assert aside.events == 1
    client.close()
