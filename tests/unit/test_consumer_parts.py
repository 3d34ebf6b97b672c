"""The consumer's parts that need no Redis: parsing, splitting a batch, dead-letter format."""

from __future__ import annotations

import importlib
import socket
from typing import Any, cast

import pytest
from faststream import AckPolicy
from faststream.redis.message import BatchStreamMessage

from metastream.config import Settings
from metastream.consumer import Consumer, Entry, Ingestor, consumer_name
from metastream.consumer.dead_letters import dead_letter_fields, parse_dead_letter
from metastream.consumer.entries import decode_batch, parse_batch
from metastream.consumer.reclaim import idle_interval
from metastream.consumer.trim import _after, _format_id
from metastream.errors import NotRunning
from tests.streams import run_events

URL = "redis://127.0.0.1:1/0"  # never connected to


def ingestor(settings: Settings) -> Ingestor:
    return Ingestor(cast(Any, None), cast(Any, None), settings, "me-1", environ={})


def test_consumer_names_are_per_process() -> None:
    assert consumer_name() == f"{socket.gethostname()}-{__import__('os').getpid()}"
    assert consumer_name(pid=7).endswith("-7")


def test_the_stack_reads_the_pid_back_from_a_name_of_this_machine_only() -> None:
    from metastream.processes import local_consumer_pid

    assert local_consumer_pid(consumer_name(pid=4242)) == 4242
    assert local_consumer_pid("elsewhere-4242") is None
    assert local_consumer_pid(f"{socket.gethostname()}-x") is None


def test_the_subscriber_reads_batches_as_this_process_and_acks_nothing_itself(
    settings: Settings,
) -> None:
    consumer = Consumer(settings.with_(max_records=321), url=URL)
    (subscriber,) = consumer.broker.subscribers
    sub = subscriber.stream_sub  # type: ignore[attr-defined]
    assert sub.batch
    assert sub.max_records == 321
    assert sub.group == settings.group
    assert sub.consumer == consumer.name == consumer_name()
    assert sub.last_id == ">"  # FastStream's default: the group itself is created at 0
    assert subscriber.config.ack_policy is AckPolicy.MANUAL  # type: ignore[attr-defined]


def test_a_consumer_needs_a_redis(settings: Settings) -> None:
    with pytest.raises(NotRunning, match="metastream up"):
        Consumer(settings)


def test_the_module_app_is_built_from_the_environment_on_first_use(
    home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module("metastream.consumer.app")
    monkeypatch.setattr(module, "_app", None)
    with pytest.raises(NotRunning):
        _ = module.app
    monkeypatch.setenv("METASTREAM_REDIS_URL", URL)
    monkeypatch.setenv("METASTREAM_MAX_RECORDS", "77")
    app = module.app
    assert module.app is app
    (subscriber,) = app.broker.subscribers  # type: ignore[union-attr]
    assert subscriber.stream_sub.max_records == 77
    with pytest.raises(AttributeError):
        _ = module.nothing


async def test_the_parser_keeps_entries_as_redis_gave_them() -> None:
    raw = cast(
        BatchStreamMessage,
        {
            "type": "bstream",
            "channel": "s",
            "message_ids": [b"1-0", b"1-1"],
            "data": [{b"__data__": b"a"}, {b"x": b"y"}],
        },
    )
    message = await parse_batch(raw)
    entries = await decode_batch(message)
    assert entries == [Entry(b"1-0", {b"__data__": b"a"}), Entry(b"1-1", {b"x": b"y"})]
    assert entries[0].data == b"a"
    assert entries[1].data is None
    assert message.message_id == "1-0"


def test_split_sets_aside_what_cannot_be_ingested(settings: Settings) -> None:
    good = run_events(2)
    entries = [
        Entry(b"1-0", {b"__data__": good[0]}),
        Entry(b"1-1", {b"__data__": b"\xc1"}),
        Entry(b"1-2", {b"other": b"x"}),
        Entry(b"1-3", None),  # deleted while pending
        Entry(b"1-4", {b"__data__": good[1]}),
        Entry(b"1-5", {b"__data__": good[1]}),
    ]
    # Delivered often is not an entry's fault (a disk full for an hour): it is tried again.
    deliveries = {b"1-0": 2, b"1-5": settings.max_deliveries + 1}
    bodies, ids, rejected = ingestor(settings).split(entries, deliveries)
    assert ids == [b"1-0", b"1-1", b"1-4", b"1-5"]  # 1-1 cannot be decoded: the store says so
    assert bodies == [good[0], b"\xc1", good[1], good[1]]
    reasons = {r.entry.id: r.reason for r in rejected}
    assert reasons == {b"1-2": "no __data__ field (fields: other)"}


@pytest.mark.parametrize(
    "fields",
    [{b"__data__": b"\x01\x02"}, {b"a": b"1", b"b": b"\xff"}, {b"__data__": b"x", b"k": b"v"}],
)
def test_a_dead_letter_keeps_the_original_entry(fields: dict[bytes, bytes]) -> None:
    entry = Entry(b"1700000000000-3", fields)
    written = dead_letter_fields(entry, "why", stream="s", group="g", consumer="c", deliveries=6)
    stored = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in written.items()}
    dead = parse_dead_letter(b"1700000001000-0", stored)
    assert dead.original == fields
    assert (dead.reason, dead.stream, dead.entry_id, dead.group, dead.consumer) == (
        "why",
        "s",
        "1700000000000-3",
        "g",
        "c",
    )
    assert dead.deliveries == 6
    assert dead.dead_lettered_at == 1700000001.0
    assert dead.age(now=1700000061.0) == 60.0


def test_ids_after() -> None:
    assert _format_id(_after(b"5-0")) == "5-1"
    assert _format_id(_after("0-0")) == "0-1"
    assert _format_id(_after(f"5-{2**64 - 1}")) == "6-0"


def test_reclaim_scans_often_enough_but_not_hot() -> None:
    assert idle_interval(30_000) == 5.0
    assert idle_interval(1_000) == 0.5
    assert idle_interval(10) == 0.05
