"""The producer across processes: fork, multiprocessing, exiting, and being killed."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.constants import DATA_FIELD
from metastream.producer import Producer, default, get_producer
from metastream.producer.records import HEADER
from metastream.producer.spool import SUFFIX
from metastream.stack.server import free_port
from tests.integration.child_producers import env_for, fresh_warning, run_script
from tests.streams import eventually

pytestmark = [
    pytest.mark.redis,
    # Python 3.12+ warns about fork() in a process with threads; that is what is tested here.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

__all__ = ["env_for", "fresh_warning"]  # fixtures, used by name


@pytest.fixture
def process_wide(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, stream: str, home: Path
) -> Iterator[None]:
    """``get_producer()`` configured from the environment, closed afterwards."""
    monkeypatch.setenv("METASTREAM_REDIS_URL", redis_url)
    monkeypatch.setenv("METASTREAM_STREAM", stream)
    monkeypatch.setattr(default, "_default", None)
    yield
    found = default._default
    if found is not None:
        found.close(timeout=1)


def stream_bodies(client: redis.Redis, stream: str) -> list[bytes]:
    return [f[DATA_FIELD.encode()] for _, f in client.xrange(stream)]


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_after_fork_the_child_publishes_on_its_own_and_parent_events_arrive_once(
    settings: Settings, redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    producer = Producer(settings.with_(linger_ms=300), redis_url=redis_url, stream=stream)
    parent_before = [b"parent-before-%d" % i for i in range(50)]
    for body in parent_before:
        producer.publish(body)  # still queued (lingering) when we fork
    child = [b"child-%d" % i for i in range(20)]

    pid = os.fork()
    if pid == 0:  # the child: the same object, but its own queue, thread and connection
        code = 3
        try:
            fresh = producer.stats.queued == 0
            for body in child:
                producer.publish(body)
            code = 0 if fresh and producer.flush(10) else 1
        finally:
            os._exit(code)

    parent_after = [b"parent-after-%d" % i for i in range(50)]
    for body in parent_after:
        producer.publish(body)
    try:
        assert _exit_code(pid) == 0
        assert producer.flush(10)
    finally:
        producer.close(timeout=1)

    arrived = stream_bodies(redis_client, stream)
    assert Counter(arrived) == Counter(parent_before + parent_after + child)
    assert [b for b in arrived if b.startswith(b"parent")] == parent_before + parent_after


def test_get_producer_in_a_forked_child_is_a_new_producer(
    process_wide: None, redis_client: redis.Redis, stream: str
) -> None:
    parent = get_producer()
    parent.publish(b"from-parent")

    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            mine = get_producer()
            mine.publish(b"from-child")
            code = 0 if mine is not parent and mine.flush(10) else 1
        finally:
            os._exit(code)

    assert _exit_code(pid) == 0
    assert parent.flush(10)
    assert Counter(stream_bodies(redis_client, stream)) == Counter([b"from-parent", b"from-child"])


def _publish_and_return(n: int) -> None:
    producer = get_producer()
    for i in range(n):
        producer.publish(b"mp-%d" % i)
    # no flush: the producer's exit hook must send them before the child ends


def test_a_multiprocessing_child_sends_its_events_without_flushing(
    process_wide: None, redis_client: redis.Redis, stream: str
) -> None:
    get_producer().publish(b"parent")
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_publish_and_return, args=(200,))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    assert get_producer().flush(10)
    assert eventually(lambda: redis_client.xlen(stream) == 201)
    wanted = [b"parent"] + [b"mp-%d" % i for i in range(200)]
    assert Counter(stream_bodies(redis_client, stream)) == Counter(wanted)


_PUBLISH_AND_EXIT = """
import sys
from metastream.producer import get_producer
for i in range(int(sys.argv[1])):
    get_producer().publish(b"exiting-%d" % i)
"""


def test_a_process_exiting_with_unsent_events_spools_them_for_the_next_producer(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    env = env_for(f"redis://127.0.0.1:{free_port()}/0", METASTREAM_LINGER_MS="60000")
    done = run_script(_PUBLISH_AND_EXIT, "500", env=env)
    assert done.returncode == 0, done.stderr
    assert "metastream up" in done.stderr  # the one warning reaches users with no logging set up
    assert len(list(settings.spool_dir.glob(f"*{SUFFIX}"))) == 1
    assert redis_client.xlen(stream) == 0

    nxt = Producer(settings, redis_url=redis_url, stream=stream)
    try:
        assert eventually(lambda: redis_client.xlen(stream) == 500)
        assert eventually(lambda: not list(settings.spool_dir.iterdir()))
    finally:
        nxt.close(timeout=1)
    assert stream_bodies(redis_client, stream) == [b"exiting-%d" % i for i in range(500)]


def test_a_process_exiting_with_queued_events_sends_them_at_exit(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    env = env_for(redis_url, METASTREAM_LINGER_MS="60000")  # nothing would go out by itself
    done = run_script(_PUBLISH_AND_EXIT, "300", env=env)

    assert done.returncode == 0, done.stderr
    assert stream_bodies(redis_client, stream) == [b"exiting-%d" % i for i in range(300)]
    assert not list(settings.spool_dir.glob(f"*{SUFFIX}"))


_SPOOL_AND_WAIT = """
import sys, time
from metastream.producer import get_producer
producer = get_producer()
n = int(sys.argv[1])
for i in range(n):
    producer.publish(b"killed-%d" % i)
spooled = producer.flush(10) is False and producer.stats.spooled == n
print("spooled" if spooled else f"unexpected {producer.stats}", flush=True)
time.sleep(60)
"""


def test_a_killed_process_spool_is_sent_by_the_next_producer_torn_tail_and_all(
    env_for: Callable[..., dict[str, str]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = env_for(f"redis://127.0.0.1:{free_port()}/0")
    victim = subprocess.Popen(
        [sys.executable, "-c", _SPOOL_AND_WAIT, "400"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "spooled"
        (path,) = settings.spool_dir.glob(f"*{SUFFIX}")
        with path.open("ab") as f:  # as if it died in the middle of writing one more record
            f.write(HEADER.pack(200, 0) + b"half a rec")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if victim.stdout is not None:
            victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL

    caplog.set_level(logging.WARNING, logger="metastream.producer")
    nxt = Producer(settings, redis_url=redis_url, stream=stream)
    try:
        assert eventually(lambda: redis_client.xlen(stream) >= 400)
        assert eventually(lambda: not path.exists())
    finally:
        nxt.close(timeout=1)

    assert stream_bodies(redis_client, stream) == [b"killed-%d" % i for i in range(400)]
    assert nxt.stats.resent == 400
    torn = [r.getMessage() for r in caplog.records if "incomplete record" in r.getMessage()]
    assert len(torn) == 1
    assert path.name in torn[0]
