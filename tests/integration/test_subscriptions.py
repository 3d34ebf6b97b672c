"""A downstream subscriber: catch-up from the log, the switch-over, retries, dead letters."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack

import pytest

from metastream.api import create_app
from metastream.api.serving import BackgroundServer
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import (
    Recorder,
    ids_of,
    settle,
    log_caught_up,
    metric_events,
    subscribed,
    wait_until,
)
from tests.streams import fill

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


@pytest.mark.parametrize("through", ["file", "feed"])
async def test_trimmed_history_reaches_a_late_subscriber(
    real_stack: RealStack, through: str
) -> None:
    stack = real_stack
    s = stack.settings
    early = metric_events(300)
    fill(stack.redis, s.stream, early)
    await wait_until(lambda: log_caught_up(stack.redis, s))
    # Every group acked everything: trimming may remove it all (the log keeps it).
    stack.redis.xtrim(s.stream, maxlen=0, approximate=False)
    assert stack.stream_length() == 0

    recorder = Recorder()
    if through == "feed":
        server = BackgroundServer(create_app(s.db, poll_interval=0.05))
        server.__enter__()
        history = server.url
    else:
        history = str(s.db)
    try:
        async with subscribed(recorder, s, group="late", history=history, from_="start"):
            await wait_until(lambda: len(recorder.ids) >= len(early))
            late = metric_events(50)
            fill(stack.redis, s.stream, late)
            await wait_until(lambda: len(recorder.ids) >= len(early) + len(late))
    finally:
        if through == "feed":
            server.__exit__(None, None, None)
    assert recorder.ids == ids_of(early) + ids_of(late)
    # typed: the values are what was logged
    assert [e.metadata["i"] for e in recorder.events[1:10]] == list(range(1, 10))  # type: ignore[union-attr]


def _positions(db: object) -> dict[bytes, int]:
    from metastream.query import Reader

    with Reader(db) as reader:  # type: ignore[arg-type]
        return {
            bytes(i): int(p)
            for p, i in reader.db.execute("SELECT position, event_id FROM log_events")
        }


async def test_the_switch_over_under_concurrent_publishing_loses_and_doubles_nothing(
    real_stack: RealStack,
) -> None:
    """Property over seeded interleavings: publish bursts while subscribers start at random moments.

    Each subscriber (a new group) must get every event after its start position exactly
    once: those already in the log through the catch-up, the rest through its group.
    """
    stack = real_stack
    s = stack.settings
    rng = random.Random(11)
    published: list[bytes] = []
    fill(stack.redis, s.stream, first := metric_events(50))
    published += ids_of(first)
    await wait_until(lambda: log_caught_up(stack.redis, s))
    with BackgroundServer(create_app(s.db, poll_interval=0.02)) as feed:
        await _rounds(stack, rng, published, feed)


async def _rounds(
    stack: RealStack, rng: random.Random, published: list[bytes], feed: BackgroundServer
) -> None:
    s = stack.settings
    for round_ in range(4):
        subscribers: list[tuple[str, int, Recorder]] = []
        async with AsyncExitStack() as running:

            async def start_one(name: str, history: str) -> None:
                await asyncio.sleep(rng.uniform(0, 0.25))
                head = max(_positions(s.db).values(), default=0)
                start = rng.choice([0, rng.randint(0, head)])
                recorder = Recorder()
                await running.enter_async_context(
                    subscribed(
                        recorder, s, group=name, history=history, from_=start if start else "start"
                    )
                )
                subscribers.append((name, start, recorder))

            async def publish() -> None:
                for _ in range(8):
                    bodies = metric_events(rng.randint(1, 120))
                    await asyncio.to_thread(fill, stack.redis, s.stream, bodies)
                    published.extend(ids_of(bodies))
                    await asyncio.sleep(rng.uniform(0, 0.04))

            await asyncio.gather(
                publish(),
                start_one(f"round{round_}-file-1", str(s.db)),
                start_one(f"round{round_}-file-2", str(s.db)),
                start_one(f"round{round_}-feed", feed.url),
            )
            await wait_until(lambda: log_caught_up(stack.redis, s))
            positions = _positions(s.db)
            assert set(positions) == set(published)
            for name, start, recorder in subscribers:
                expected = {i for i, p in positions.items() if p > start}
                await settle(lambda r=recorder, e=expected: len(r.ids) >= len(e))  # type: ignore[misc]
                await asyncio.sleep(0.1)  # anything doubled arrives meanwhile
                counts = recorder.counts()
                doubled = [i for i, n in counts.items() if n > 1]
                assert not doubled, f"{name} (from {start}): {len(doubled)} events delivered twice"
                assert set(counts) == expected, f"{name} (from {start}): lost or extra events"
