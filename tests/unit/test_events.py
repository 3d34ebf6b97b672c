"""Events: a tagged union that old and new versions of metastream both read."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from metastream.schemas import (
    EVENT_TYPES,
    ArtifactByName,
    ById,
    DecodeError,
    MetadataLogged,
    ModelByName,
    RunByName,
    RunStarted,
    StepByName,
    decode_event,
    decode_stored,
    encode_event,
    model_version_id_for,
    prepare_metadata,
)
from metastream.schemas.values import ENCODER


class RunStartedV0(msgspec.Struct, tag="RunStarted", tag_field="type", kw_only=True):
    """RunStarted as an older producer wrote it: no pipeline_name yet."""

    event_id: bytes
    ts: float
    run_id: uuid.UUID
    name: str


class RunStartedV2(msgspec.Struct, tag="RunStarted", tag_field="type", kw_only=True):
    """RunStarted from a newer producer, with a field this version does not know."""

    event_id: bytes
    ts: float
    run_id: uuid.UUID
    name: str
    pipeline_name: str
    git_commit: str | None = None


def test_an_event_from_a_newer_producer_decodes_ignoring_unknown_fields() -> None:
    run_id = uuid.uuid4()
    newer = RunStartedV2(
        event_id=b"\x01" * 16, ts=1.0, run_id=run_id, name="r", pipeline_name="p", git_commit="abc"
    )
    event = decode_event(ENCODER.encode(newer))
    assert event == RunStarted(
        event_id=b"\x01" * 16, ts=1.0, run_id=run_id, name="r", pipeline_name="p"
    )


def test_an_event_from_this_version_decodes_with_an_older_struct() -> None:
    run_id = uuid.uuid4()
    body = encode_event(RunStarted(run_id=run_id, name="r", pipeline_name="p"))
    older = msgspec.msgpack.decode(body, type=RunStartedV0)
    assert (older.run_id, older.name) == (run_id, "r")


def test_a_new_optional_field_gets_its_default_from_older_events() -> None:
    old = ENCODER.encode(
        {
            "type": "MetadataLogged",
            "event_id": b"\x02" * 16,
            "ts": 2.0,
            "target": {"type": "run", "name_id_or_prefix": "r"},
            "metadata": {"a": 1},
        }
    )
    event = decode_event(old)
    assert isinstance(event, MetadataLogged)
    assert event.component is None  # added after this body was written


@pytest.mark.parametrize(
    "target",
    [
        ById(kind="step_run", id=uuid.uuid4()),
        RunByName(name_id_or_prefix="run-1"),
        StepByName(run="run-1", step_name="train"),
        ArtifactByName(name="data", version="3"),
        ModelByName(name="m", version="1.0"),
    ],
)
def test_every_reference_kind_round_trips(target: object) -> None:
    event = MetadataLogged(target=target, metadata=prepare_metadata({"k": 1}))  # type: ignore[arg-type]
    assert decode_event(encode_event(event)) == event
    stored = decode_stored(encode_event(event))
    assert stored.target == target  # type: ignore[union-attr]
    assert bytes(stored.metadata["k"]) == b"\x01"  # type: ignore[union-attr]


def test_every_event_type_round_trips() -> None:
    assert {t.__name__ for t in EVENT_TYPES} == {
        "MetadataLogged",
        "RunStarted",
        "RunFinished",
        "StepStarted",
        "StepFinished",
        "ArtifactVersionRegistered",
        "ModelVersionRegistered",
    }


@pytest.mark.parametrize(
    "body",
    [b"", b"\xc1", ENCODER.encode({"type": "Unknown", "event_id": b"x"}), ENCODER.encode([1, 2])],
)
def test_bytes_that_are_not_an_event_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(body)
    with pytest.raises(ValueError):  # noqa: PT011 - DecodeError is a ValueError
        decode_stored(body)


def test_named_model_versions_get_the_same_id_from_every_producer() -> None:
    assert model_version_id_for("m", "1") == model_version_id_for("m", "1")
    assert model_version_id_for("m", "1") != model_version_id_for("m", "2")
