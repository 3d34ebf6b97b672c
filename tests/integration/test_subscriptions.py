"""A downstream subscriber: catch-up from the log, the switch-over, retries, dead letters."""

from __future__ import annotations

import pytest

from metastream.api import create_app
from metastream.api.background import BackgroundServer
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import (
    Recorder,
    ids_of,
    log_caught_up,
    metric_events,
    subscribed,
    wait_until,
)
from tests.streams import fill

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


@pytest.mark.parametrize("through", ["file", "feed"])
async def test_trimmed_history_reaches_a_late_subscriber(real_stack: RealStack, through: str) -> None:
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
