"""The AsyncAPI document is enough to read the stream: plain redis-py, a generic msgpack decoder.

A service in another language sees what this test sees: it knows nothing of
metastream's structs, only ``docs/asyncapi.json`` (the field holding the
event, the ``type`` tag, required fields, and the table of extension types).
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from metastream import DType, StorageSize, Uri, log_metadata, pipeline, step
from tests.integration.stack_fixture import RealStack, clean_env, real_stack

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json").read_text())


def _field() -> bytes:
    """The entry's field, as the document's channel description names it (`__data__`)."""
    description = DOCUMENT["channels"]["events"]["description"]
    return description.split("`")[1].encode()


def _plain(value: Any, extensions: dict[str, dict[str, str]]) -> Any:
    """A generically decoded value, its extensions read by the document's table only."""
    if isinstance(value, msgspec.msgpack.Ext):
        kind = extensions[str(value.code)]["type"]
        payload = bytes(value.data)
        if kind in ("Uri", "Path", "DType"):  # "UTF-8 text"
            return payload.decode()
        inner = msgspec.msgpack.decode(payload)  # "a msgpack ..."
        if kind == "datetime":
            return datetime.datetime.fromisoformat(inner)
        if kind in ("int", "StorageSize"):
            return int(inner)
        items = [_plain(v, extensions) for v in inner]
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
    if isinstance(value, list):
        return [_plain(v, extensions) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, extensions) for k, v in value.items()}
    return value


def test_a_reader_that_knows_only_the_document_reads_every_event(real_stack: RealStack) -> None:
    logged = {
        "uri": Uri("s3://bucket/data.csv"),
        "dtype": DType("float32"),
        "size": StorageSize(2_500_000),
        "shape": (3, 4),
        "labels": {"a", "b"},
        "when": datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC),
        "big": 2**80,
        "card": {"accuracy": 0.9, "nested": [1, (2, 3)]},
    }

    @step
    def train() -> None:
        log_metadata(logged)

    @pipeline
    def contract() -> None:
        train()

    run = contract()
    real_stack.sync()

    schemas = DOCUMENT["components"]["schemas"]
    messages = DOCUMENT["components"]["messages"]
    extensions = schemas["MetadataValue"]["x-msgpack-extensions"]
    seen: dict[str, list[dict[str, Any]]] = {}
    for _, fields in real_stack.redis.xrange(real_stack.settings.stream):
        event = msgspec.msgpack.decode(fields[_field()])  # generic: maps, lists, Ext
        assert event["type"] in messages
        for required in schemas[event["type"]]["required"]:
            assert required in event, (event["type"], required)
        assert len(event["event_id"]) == 16
        seen.setdefault(event["type"], []).append(event)

    assert sorted(seen) == [
        "MetadataLogged",
        "RunFinished",
        "RunStarted",
        "StepFinished",
        "StepStarted",
    ]
    (started,) = seen["RunStarted"]
    assert uuid.UUID(bytes=started["run_id"]) == run.id
    assert started["name"] == run.name
    (metadata_event,) = seen["MetadataLogged"]
    assert metadata_event["target"]["type"] == "id"
    read = _plain(metadata_event["metadata"], extensions)
    assert read == logged
    assert type(read["shape"]) is tuple  # types kept
    assert type(read["labels"]) is set
    assert read["when"].utcoffset() == datetime.timedelta(0)
