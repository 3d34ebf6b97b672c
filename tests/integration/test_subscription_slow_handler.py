"""A handler slower than ``retry_after`` gets each event once: the retry loop leaves a batch
in flight to the call that is delivering it, and skips what was acked while it waited."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from metastream.schemas import AnyEvent
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import ids_of, metric_events, settle, subscribed
from tests.streams import fill

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


class SlowRecorder:
    """Takes ``pause`` seconds over each of the first events: longer than ``retry_after``."""

    def __init__(self, pause: float, slow: int) -> None:
        self.pause = pause
        self.slow = slow
        self.ids: list[bytes] = []

    async def __call__(self, event: AnyEvent) -> None:
        if len(self.ids) < self.slow:
            await asyncio.sleep(self.pause)
        self.ids.append(event.event_id)


async def test_a_handler_slower_than_retry_after_gets_each_event_once(
    real_stack: RealStack,
) -> None:
    stack = real_stack
    s = stack.settings
    recorder = SlowRecorder(pause=0.15, slow=6)  # the first batch: ~0.9 s in the handler
    async with subscribed(recorder, s, group="slow", from_="now", options={"retry_after": 0.2}):
        events = metric_events(40)
        fill(stack.redis, s.stream, events)
        await settle(lambda: len(recorder.ids) >= len(events))
        await asyncio.sleep(1.0)  # a retry of the first batch would arrive meanwhile
        pending = stack.redis.xpending(s.stream, "slow")["pending"]
    doubled = [i for i, n in Counter(recorder.ids).items() if n > 1]
    assert not doubled, f"{len(doubled)} events delivered twice"
    assert sorted(recorder.ids) == sorted(ids_of(events))
    assert pending == 0
