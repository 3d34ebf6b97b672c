"""Helpers for the subscription tests: a subscriber in this event loop, events with known ids."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis

from metastream.config import Settings
from metastream.schemas import (
    AnyEvent,
    ById,
    MetadataLogged,
    RunStarted,
    StepStarted,
    decode_stored,
    encode_event,
    prepare_metadata,
)
from metastream.subscriptions import SubscribeOptions, Subscription, subscribe
from metastream.subscriptions.history import History


def metric_events(n: int, pipeline: str = "p", key: str = "i") -> list[bytes]:
    """A run of ``pipeline`` (``RunStarted``) and ``n - 1`` metrics on it, encoded."""
    run_id = uuid.uuid4()
    out = [encode_event(RunStarted(run_id=run_id, name=f"r-{run_id}", pipeline_name=pipeline))]
    target = ById(kind="pipeline_run", id=run_id)
    out.extend(
        encode_event(MetadataLogged(target=target, metadata=prepare_metadata({key: i})))
        for i in range(1, n)
    )
    return out


def step_event(run_id: uuid.UUID) -> bytes:
    return encode_event(StepStarted(step_id=uuid.uuid4(), run_id=run_id, name="s"))


def ids_of(bodies: list[bytes]) -> list[bytes]:
    return [decode_stored(b).event_id for b in bodies]


class Recorder:
    """A handler that records the id of every event it is given."""

    def __init__(self, fail_on: set[bytes] | None = None) -> None:
        self.ids: list[bytes] = []
        self.events: list[AnyEvent] = []
        self.fail_on = fail_on or set()
        self.failures: Counter[bytes] = Counter()

    async def __call__(self, event: AnyEvent) -> None:
        if event.event_id in self.fail_on:
            self.failures[event.event_id] += 1
            raise RuntimeError(f"poison {event.id}")
        self.ids.append(event.event_id)
        self.events.append(event)

    def counts(self) -> Counter[bytes]:
        return Counter(self.ids)


def options(settings: Settings, **changes: Any) -> SubscribeOptions:
    return SubscribeOptions(
        redis_url=settings.redis_url,
        stream=settings.stream,
        log_group=settings.group,
        settings=settings,
        **({"retry_after": 0.2} | changes),
    )


@asynccontextmanager
async def subscribed(
    handler: Callable[[AnyEvent], Any],
    settings: Settings,
    *,
    group: str,
    history: str | Path | History | None = None,
    **kwargs: Any,
) -> AsyncIterator[Subscription]:
    """A subscription running in this event loop for the duration of the block."""
    opts = options(settings, **kwargs.pop("options", {}))
    subscription = subscribe(
        handler, group=group, history=history or settings.db, options=opts, **kwargs
    )
    async with subscription.app:
        yield subscription


async def settle(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` or ``within`` seconds (the caller then asserts what it wants)."""
    deadline = time.monotonic() + within
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110  (polling a predicate)
        await asyncio.sleep(0.02)


def log_caught_up(client: redis.Redis, settings: Settings) -> bool:
    """Whether the log's group has been delivered the stream's last entry and acked it all."""
    stream, group = settings.stream, settings.group.encode()
    last = client.xinfo_stream(stream)["last-generated-id"]
    (info,) = [g for g in client.xinfo_groups(stream) if g["name"] == group]
    return bool(info["last-delivered-id"] == last and info["pending"] == 0)
