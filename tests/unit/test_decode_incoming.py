"""Decoding entries off the stream: what the projections would choke on is a decode error.

A producer never writes these (``prepare_metadata`` refuses them at the
call), so they are built here as raw msgpack, as a foreign or broken
producer would send them.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from metastream.schemas import (
    ById,
    DecodeError,
    MetadataLogged,
    RunStarted,
    decode_stored,
    encode_event,
    prepare_metadata,
)
from metastream.schemas.codec import RawMetadataLogged, decode_incoming

TARGET = ById(kind="pipeline_run", id=uuid.UUID(int=7))


def with_value(value: Any) -> bytes:
    """A ``MetadataLogged`` whose ``card`` value is ``value`` encoded as plain msgpack."""
    raw = msgspec.Raw(msgspec.msgpack.encode(value))
    return msgspec.msgpack.encode(RawMetadataLogged(target=TARGET, metadata={"card": raw}))


def without_event_id(body: bytes) -> bytes:
    fields = msgspec.msgpack.decode(body)
    del fields["event_id"]
    return msgspec.msgpack.encode(fields)


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"a": {"b": [{"c": {2: "deep"}}]}},
        [{"x": 1}, {3.5: "float key"}],
        {"bytes": b"\x00"},
    ],
)
def test_a_value_the_projections_cannot_use_is_a_decode_error_naming_the_key(value: Any) -> None:
    body = with_value(value)
    decode_stored(body)  # what reads the log stays lenient
    with pytest.raises(DecodeError, match="metadata 'card'"):
        decode_incoming(body)


def test_an_unknown_extension_type_is_a_decode_error() -> None:
    raw = msgspec.Raw(msgspec.msgpack.encode(msgspec.msgpack.Ext(99, b"")))
    body = msgspec.msgpack.encode(RawMetadataLogged(target=TARGET, metadata={"x": raw}))
    with pytest.raises(DecodeError, match="extension type 99"):
        decode_incoming(body)


def test_a_missing_event_id_is_a_decode_error() -> None:
    body = without_event_id(
        encode_event(RunStarted(run_id=uuid.uuid4(), name="r", pipeline_name="p"))
    )
    decode_stored(body)  # would get a fresh id on every decode: the bug this closes
    assert decode_stored(body).event_id != decode_stored(body).event_id
    with pytest.raises(DecodeError, match="no event_id"):
        decode_incoming(body)
    short = msgspec.msgpack.decode(
        encode_event(RunStarted(run_id=uuid.uuid4(), name="r", pipeline_name="p"))
    )
    short["event_id"] = b"\x01\x02"
    with pytest.raises(DecodeError, match="event_id"):
        decode_incoming(msgspec.msgpack.encode(short))


def test_events_made_in_python_still_get_an_id_and_decode_unchanged() -> None:
    event = MetadataLogged(
        target=TARGET,
        metadata=prepare_metadata(
            {"f": 1.5, "s": "x", "card": {"a": 1, "nested": {"b": (1, 2)}}, "set": {1, 2}}
        ),
    )
    assert len(event.event_id) == 16  # producers construct events as before
    body = encode_event(event)
    assert decode_incoming(body) == decode_stored(body)


def test_fields_an_older_or_newer_producer_writes_still_decode() -> None:
    """Schema evolution: unknown fields are ignored, optional fields may be missing."""
    fields = msgspec.msgpack.decode(encode_event(MetadataLogged(target=TARGET, metadata={"a": 1})))
    del fields["component"]  # an older producer
    fields["added_later"] = {"any": ["thing"]}  # a newer one
    event = decode_incoming(msgspec.msgpack.encode(fields))
    assert isinstance(event, RawMetadataLogged)
    assert event.component is None
