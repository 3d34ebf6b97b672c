"""The stream contract: docs/asyncapi.json, generated from the event structs, valid AsyncAPI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from metastream.schemas.asyncapi import EXTENSION_TYPES, asyncapi_document, asyncapi_json
from metastream.schemas.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
SPEC = ROOT / "tests" / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def test_the_committed_document_is_what_the_structs_generate() -> None:
    """Change an event struct, and this fails until docs/asyncapi.json is regenerated."""
    assert COMMITTED.read_text() == asyncapi_json(), (
        "the event structs changed: regenerate the contract with "
        "`metastream schema asyncapi -o docs/asyncapi.json` and check the change keeps the "
        "evolution rules (new optional fields only)"
    )


def test_a_new_field_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from metastream.schemas import asyncapi, events

    class RunStarted(events.Event, frozen=True, kw_only=True):  # one field more
        run_id: Any
        name: str
        pipeline_name: str
        owner: str | None = None

    monkeypatch.setattr(
        asyncapi,
        "EVENT_TYPES",
        tuple(RunStarted if e is events.RunStarted else e for e in EVENT_TYPES),
    )
    assert asyncapi.asyncapi_json() != COMMITTED.read_text()


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SPEC.read_text()))


def test_the_document_is_valid_asyncapi_3() -> None:
    validator = _validator()
    document = json.loads(COMMITTED.read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = json.loads(COMMITTED.read_text())
    broken["channels"]["events"]["address"] = 5  # the validator does check
    assert list(validator.iter_errors(broken))


def test_every_event_type_is_a_message_with_every_field() -> None:
    document = asyncapi_document("s")
    assert document["channels"]["events"]["address"] == "s"
    schemas = document["components"]["schemas"]
    for event in EVENT_TYPES:
        name = event.__name__
        assert name in document["components"]["messages"]
        fields = set(schemas[name]["properties"])
        assert fields == {"type", *event.__struct_fields__}
        assert {"type", "event_id", "ts"} <= set(schemas[name]["required"])


def test_the_extension_table_covers_every_type_the_encoder_writes() -> None:
    import datetime

    from metastream.schemas import DType, Path, StorageSize, Uri, prepare_metadata
    from metastream.schemas.values import ENCODER

    values = {
        "uri": Uri("s3://b"),
        "path": Path("/p"),
        "dtype": DType("int64"),
        "size": StorageSize(3),
        "tuple": (1, 2),
        "set": {1},
        "frozenset": frozenset({1}),
        "when": datetime.datetime(2026, 12, 1),
        "big": 2**70,
    }
    encoded = msgspec.msgpack.decode(ENCODER.encode(prepare_metadata(values)))
    codes = {value.code for value in encoded.values() if isinstance(value, msgspec.msgpack.Ext)}
    assert codes == set(EXTENSION_TYPES)


def test_the_cli_writes_the_document(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metastream.cli import main

    assert main(["schema", "asyncapi"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()
    out = tmp_path / "contract.json"
    assert main(["schema", "asyncapi", "--stream", "other", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["channels"]["events"]["address"] == "other"
