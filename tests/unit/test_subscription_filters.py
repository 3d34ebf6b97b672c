"""Subscription filters: read from the bytes without decoding values; runs -> pipelines."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from metastream.api.feed import _data
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    MetadataLogged,
    ModelByName,
    RunByName,
    RunStarted,
    StepByName,
    StepStarted,
    decode_event,
    decode_stored,
    encode_event,
    prepare_metadata,
)
from metastream.subscriptions import EventFilter
from metastream.subscriptions.filters import peek, peek_builtins
from metastream.subscriptions.history import LogItem
from metastream.subscriptions.knowledge import RunKnowledge

RUN = uuid.uuid4()
STEP = uuid.uuid4()
ARTIFACT = uuid.uuid4()
EVENTS = [
    RunStarted(run_id=RUN, name="nightly", pipeline_name="training"),
    StepStarted(step_id=STEP, run_id=RUN, name="train"),
    ArtifactVersionRegistered(artifact_version_id=ARTIFACT, name="data", run_id=RUN),
    MetadataLogged(target=ById(kind="step_run", id=STEP), metadata=prepare_metadata({"acc": 0.9})),
    MetadataLogged(target=RunByName(name_id_or_prefix="nightly"), metadata={"loss": 0.1}),
    MetadataLogged(target=StepByName(run=str(RUN), step_name="train"), metadata={"f1": 0.8}),
    MetadataLogged(target=ById(kind="artifact_version", id=ARTIFACT), metadata={"rows": 3}),
    MetadataLogged(target=ModelByName(name="m", version="1"), metadata={"acc": 0.7}),
]


def _feed_item(event: object) -> LogItem:
    """The event as the HTTP feed serves it."""
    stored = decode_stored(encode_event(event))  # type: ignore[arg-type]
    data = msgspec.json.decode(msgspec.json.encode(_data(stored)))
    name = type(stored).__name__.removeprefix("Raw")
    return LogItem(1, peek_builtins(name, stored.event_id, data), data={**data, "ts": stored.ts})


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_the_feed_and_the_bytes_give_the_same_peek_and_event(event: object) -> None:
    body = encode_event(event)  # type: ignore[arg-type]
    from_bytes = peek(body)
    item = _feed_item(event)
    assert item.peek.type == from_bytes.type
    assert item.peek.kind == from_bytes.kind
    assert item.peek.target == from_bytes.target
    assert (item.peek.metadata or {}).keys() == (from_bytes.metadata or {}).keys()
    assert item.event() == decode_event(body)


def test_filters_combine_dimensions_with_and_values_with_or() -> None:
    knowledge = RunKnowledge("k")
    for event in EVENTS:
        knowledge.learn(peek(encode_event(event)))

    def delivered(f: EventFilter) -> list[int]:
        out = []
        for i, event in enumerate(EVENTS):
            p = peek(encode_event(event))
            if f.matches(p, knowledge.pipeline_of(p)):
                out.append(i)
        return out

    assert delivered(EventFilter.of()) == list(range(len(EVENTS)))
    assert delivered(EventFilter.of(types="MetadataLogged")) == [3, 4, 5, 6, 7]
    assert delivered(EventFilter.of(kinds=["step_run"])) == [1, 3, 5]
    assert delivered(EventFilter.of(keys=["acc", "rows"])) == [3, 6, 7]
    # every event about the run of pipeline "training", by whatever reference; not the model's
    assert delivered(EventFilter.of(pipelines="training")) == [0, 1, 2, 3, 4, 5, 6]
    assert delivered(EventFilter.of(pipelines="other")) == []
    assert delivered(EventFilter.of(types="MetadataLogged", pipelines="training", keys="acc")) == [
        3
    ]


def test_unknown_types_and_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type Metadata"):
        EventFilter.of(types="Metadata")
    with pytest.raises(ValueError, match="unknown entity kind run"):
        EventFilter.of(kinds="run")


def test_an_event_filtered_out_is_never_decoded() -> None:
    """A value no decoder knows (extension type 99) fails only when the event is decoded."""
    body = msgspec.msgpack.encode(
        {
            "type": "MetadataLogged",
            "event_id": uuid.uuid4().bytes,
            "ts": 1.0,
            "target": {"type": "id", "kind": "model_version", "id": str(uuid.uuid4())},
            "metadata": {"weights": msgspec.msgpack.Ext(99, b"?")},
        }
    )
    seen = peek(body)
    assert not EventFilter.of(kinds="pipeline_run").matches(seen)
    assert seen.metadata is not None
    assert list(seen.metadata) == ["weights"]
    with pytest.raises(ValueError, match="extension type 99"):
        decode_event(body)
