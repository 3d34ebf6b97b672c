"""A subscriber killed with SIGKILL resumes where it acked: in the catch-up, and live.

The subscriber is ``metastream tail --group G --json`` in a process of its own:
it prints a line per event it handled. Its standard output is not read while
it runs, so it blocks on a full pipe in the middle of its work, where it is
killed; the pipe then holds exactly what it printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from metastream.query import Reader
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import ids_of, log_caught_up, metric_events
from tests.streams import eventually, fill, stop_process

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name

GROUP = "resumer"


PIPE_BYTES = 512 * 1024
"""The output pipe's size: ~2,000 lines, so the catch-up checkpoints a page before it blocks."""

STARTED: list[subprocess.Popen[bytes]] = []


class Subscriber:
    """``metastream tail --group G --from start --json`` in a process; its lines read by a thread.

    While the reading is paused the process blocks on its full output pipe.
    """

    def __init__(self, *, paused: bool) -> None:
        env = dict(os.environ, METASTREAM_SUBSCRIBE_RETRY_AFTER="0.2")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metastream", "tail", "--group", GROUP, "--from", "start"]
            + ["--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        STARTED.append(self.process)
        assert self.process.stdout is not None
        fcntl.fcntl(self.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.ids: list[bytes] = []
        self.reading = threading.Event()
        if not paused:
            self.reading.set()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.ids.append(uuid.UUID(json.loads(line)["event_id"]).bytes)
            self.reading.wait()

    def pause(self) -> None:
        self.reading.clear()

    def kill(self) -> list[bytes]:
        """SIGKILL, then the ids of every event it printed."""
        self.process.send_signal(signal.SIGKILL)
        return self.finish()

    def finish(self) -> list[bytes]:
        self.process.wait(30)
        self.reading.set()
        self.thread.join(30)
        return self.ids


def _state(stack: RealStack) -> dict[bytes, bytes]:
    return stack.redis.hgetall(f"{stack.settings.stream}:sub:{GROUP}")  # type: ignore[return-value]


def _lag(stack: RealStack) -> int:
    (info,) = [
        g for g in stack.redis.xinfo_groups(stack.settings.stream) if g["name"] == b"resumer"
    ]
    return int(info["lag"] or 0)


def _pending_event_ids(stack: RealStack) -> set[bytes]:
    from metastream.schemas import decode_stored

    s = stack.settings
    rows = stack.redis.xpending_range(s.stream, GROUP, min="-", max="+", count=100_000)
    ids = [r["message_id"] for r in rows]
    return {
        decode_stored(stack.redis.xrange(s.stream, i, i)[0][1][b"__data__"]).event_id for i in ids
    }


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def test_a_killed_subscriber_resumes_where_it_acked(real_stack: RealStack) -> None:
    stack = real_stack
    s = stack.settings
    history = metric_events(6000)
    fill(stack.redis, s.stream, history)
    assert eventually(lambda: log_caught_up(stack.redis, s), 60)
    with Reader(s.db) as reader:
        position = {
            bytes(i): p for p, i in reader.db.execute("SELECT position, event_id FROM log_events")
        }

    # 1. Killed in the middle of its catch-up (blocked on its full output pipe).
    first = Subscriber(paused=True)
    assert eventually(lambda: _state(stack).get(b"stage") == b"catchup", 30)
    assert eventually(lambda: int(_state(stack).get(b"after", b"0")) >= 1000, 30)
    printed = first.kill()
    state = _state(stack)
    assert state[b"stage"] == b"catchup", "the kill was meant to hit the catch-up"
    checkpoint = int(state[b"after"])
    assert 0 < checkpoint < len(history)

    # 2. Restarted: finishes the catch-up, follows live; killed again with entries in hand.
    second = Subscriber(paused=False)
    assert eventually(lambda: _state(stack).get(b"stage") == b"live", 30)
    second.pause()
    live = metric_events(3000)
    fill(stack.redis, s.stream, live)
    assert eventually(lambda: stack.redis.xpending(s.stream, GROUP)["pending"] > 0, 30)
    pending_at_kill = _pending_event_ids(stack)
    printed_2 = second.kill()
    pending_at_kill |= _pending_event_ids(stack)

    # 3. Restarted once more: reclaims the killed process's pending entries, goes on.
    third = Subscriber(paused=False)
    everything = ids_of(history) + ids_of(live)
    assert eventually(lambda: stack.redis.xpending(s.stream, GROUP)["pending"] == 0, 30)
    assert eventually(lambda: _lag(stack) == 0, 30)
    assert stop_process(third.process) == 0  # type: ignore[arg-type]
    printed_3 = third.finish()

    delivered = Counter(printed + printed_2 + printed_3)
    assert set(delivered) == set(everything), "an event was lost"
    doubled = {i for i, n in delivered.items() if n > 1}
    # At least once: only what was not yet acknowledged when a process died comes again.
    in_catch_up = {i for i in doubled if i in position}
    assert all(position[i] > checkpoint for i in in_catch_up)
    assert doubled - in_catch_up <= pending_at_kill
    assert not set(printed_3) & (set(printed_2) - pending_at_kill)
