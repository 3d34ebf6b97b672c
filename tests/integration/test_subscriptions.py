"""A downstream subscriber: catch-up from the log, the switch-over, retries, dead letters."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from metastream.api import create_app
from metastream.api.serving import BackgroundServer
from metastream.schemas import decode_stored
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import (
    Recorder,
    ids_of,
    log_caught_up,
    metric_events,
    settle,
    subscribed,
)
from tests.streams import fill, head, wait_for

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


@pytest.mark.parametrize("through", ["file", "feed", "feed with a token"])
async def test_trimmed_history_reaches_a_late_subscriber(
    real_stack: RealStack, through: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = real_stack
    s = stack.settings
    early = metric_events(300)
    fill(stack.redis, s.stream, early)
    await wait_for(lambda: log_caught_up(stack.redis, s))
    # Every group acked everything: trimming may remove it all (the log keeps it).
    stack.redis.xtrim(s.stream, maxlen=0, approximate=False)
    assert stack.stream_length() == 0

    recorder = Recorder()
    async with AsyncExitStack() as running:
        history = str(s.db)
        if through.startswith("feed"):
            token = "a-token-of-twenty-chars" if through.endswith("token") else None
            if token:
                monkeypatch.setenv("METASTREAM_UI_TOKEN", token)
            app = create_app(s.db, poll_interval=0.05, token=token)
            history = running.enter_context(BackgroundServer(app)).url
        await running.enter_async_context(
            subscribed(recorder, s, group="late", history=history, from_="start")
        )
        await wait_for(lambda: len(recorder.ids) >= len(early))
        late = metric_events(50)
        fill(stack.redis, s.stream, late)
        await wait_for(lambda: len(recorder.ids) >= len(early) + len(late))
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
    await wait_for(lambda: log_caught_up(stack.redis, s))
    with BackgroundServer(create_app(s.db, poll_interval=0.02)) as feed:
        await _rounds(stack, rng, published, feed)


async def _rounds(
    stack: RealStack, rng: random.Random, published: list[bytes], feed: BackgroundServer
) -> None:
    s = stack.settings
    for round_ in range(6):
        subscribers: list[tuple[str, int, Recorder]] = []
        async with AsyncExitStack() as running:

            async def start_one(
                name: str, history: str, into: list[tuple[str, int, Recorder]]
            ) -> None:
                await asyncio.sleep(rng.uniform(0, 0.25))
                start = rng.choice([0, rng.randint(0, head(s.db))])
                recorder = Recorder()
                await running.enter_async_context(
                    subscribed(
                        recorder, s, group=name, history=history, from_=start if start else "start"
                    )
                )
                into.append((name, start, recorder))

            async def publish() -> None:
                for _ in range(8):
                    bodies = metric_events(rng.randint(1, 120))
                    await asyncio.to_thread(fill, stack.redis, s.stream, bodies)
                    published.extend(ids_of(bodies))
                    await asyncio.sleep(rng.uniform(0, 0.04))

            await asyncio.gather(
                publish(),
                start_one(f"round{round_}-file-1", str(s.db), subscribers),
                start_one(f"round{round_}-file-2", str(s.db), subscribers),
                start_one(f"round{round_}-feed", feed.url, subscribers),
            )
            await wait_for(lambda: log_caught_up(stack.redis, s))
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
                # the ids the window needed are forgotten once it has passed
                seen = f"{s.stream}:sub:{name}:seen"
                await settle(lambda k=seen: not stack.redis.exists(k))  # type: ignore[misc]
                assert not stack.redis.exists(seen)


async def test_a_poison_event_for_one_subscriber_does_not_stall_another(
    real_stack: RealStack,
) -> None:
    stack = real_stack
    s = stack.settings
    history = metric_events(100)
    fill(stack.redis, s.stream, history)
    await wait_for(lambda: log_caught_up(stack.redis, s))
    live = metric_events(100)
    poison = {ids_of(history)[40], ids_of(live)[60]}  # one in the catch-up, one live
    picky = Recorder(fail_on=poison)
    calm = Recorder()
    opts = {"max_deliveries": 3, "retry_after": 0.1}
    async with (
        subscribed(picky, s, group="picky", options=opts) as picky_sub,
        subscribed(calm, s, group="calm", options=opts),
    ):
        fill(stack.redis, s.stream, live)
        everything = ids_of(history) + ids_of(live)
        await wait_for(lambda: len(calm.ids) == len(everything))
        await wait_for(lambda: stack.redis.xlen(picky_sub.dead_letters) == 2)
        await wait_for(lambda: len(picky.ids) == len(everything) - 2)
    assert calm.ids == everything
    assert picky.ids == [i for i in everything if i not in poison]
    assert picky.failures == {i: 3 for i in poison}
    assert stack.redis.xpending(s.stream, "picky")["pending"] == 0
    letters = stack.redis.xrange(picky_sub.dead_letters)
    bodies = {decode_stored(f[b"data"]).event_id: f for _, f in letters}
    assert set(bodies) == poison
    for fields in bodies.values():
        assert fields[b"reason"].startswith(b"RuntimeError: poison")
        assert fields[b"deliveries"] == b"3"
        assert fields[b"group"] == b"picky"


async def test_two_processes_of_a_new_group_catch_up_once(real_stack: RealStack) -> None:
    stack = real_stack
    s = stack.settings
    history = metric_events(2000)
    fill(stack.redis, s.stream, history)
    await wait_for(lambda: log_caught_up(stack.redis, s))
    first, second = Recorder(), Recorder()
    async with AsyncExitStack() as running:
        await asyncio.gather(
            *(
                running.enter_async_context(
                    subscribed(r, s, group="replicas", options={"consumer": f"replica-{i}"})
                )
                for i, r in enumerate((first, second))
            )
        )
        live = metric_events(300)
        fill(stack.redis, s.stream, live)
        everything = ids_of(history) + ids_of(live)
        await settle(lambda: len(first.ids) + len(second.ids) >= len(everything))
        await asyncio.sleep(0.1)  # anything doubled arrives meanwhile
    delivered = first.counts() + second.counts()
    assert set(delivered) == set(everything)
    assert max(delivered.values()) == 1


async def test_a_group_from_now_needs_no_history(real_stack: RealStack, tmp_path: Path) -> None:
    stack = real_stack
    s = stack.settings
    fill(stack.redis, s.stream, metric_events(20))  # before: not wanted
    recorder = Recorder()
    missing = tmp_path / "no-such.db"
    async with subscribed(recorder, s, group="fresh", history=str(missing), from_="now"):
        live = metric_events(20)
        fill(stack.redis, s.stream, live)
        await wait_for(lambda: len(recorder.ids) >= len(live))
    assert recorder.ids == ids_of(live)
    assert not missing.exists()
