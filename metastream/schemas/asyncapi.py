"""The stream's contract as an AsyncAPI 3.0 document, generated from the event structs.

``asyncapi_document()`` is what ``metastream schema asyncapi`` writes and
``metastream ui`` serves at ``/docs/asyncapi``; ``docs/asyncapi.json`` is a
copy kept in the repository, and a test fails when the structs change
without it. The payload schemas come from ``msgspec.json.schema_components``
over the event types; what JSON Schema cannot say about the msgpack wire
format (16-byte binary ids, extension types for metadata values) is added as
``x-msgpack`` notes and described in ``info.description``.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

import msgspec

from metastream import constants
from metastream.schemas.events import EVENT_TYPES
from metastream.schemas.values import (
    EXT_BIG_INT,
    EXT_DATETIME,
    EXT_DTYPE,
    EXT_FROZENSET,
    EXT_PATH,
    EXT_SET,
    EXT_STORAGE_SIZE,
    EXT_TUPLE,
    EXT_URI,
)

CONTRACT_VERSION: Final = "1.0.0"
"""The version of the stream contract (not of the package): its major part changes only
if an event is renamed or a field retyped, which the evolution rules forbid."""

EXTENSION_TYPES: Final[dict[int, tuple[str, str]]] = {
    EXT_URI: ("Uri", "UTF-8 text of the URI"),
    EXT_PATH: ("Path", "UTF-8 text of the path"),
    EXT_DTYPE: ("DType", "UTF-8 text of the data type name"),
    EXT_STORAGE_SIZE: ("StorageSize", "a msgpack int: the size in bytes"),
    EXT_TUPLE: ("tuple", "a msgpack array of metadata values"),
    EXT_SET: ("set", "a msgpack array of metadata values"),
    EXT_FROZENSET: ("frozenset", "a msgpack array of metadata values"),
    EXT_DATETIME: (
        "datetime",
        "a msgpack str: ISO 8601 text, naive when it has no offset, else with its exact offset",
    ),
    EXT_BIG_INT: ("int", "a msgpack str: the decimal text of an int beyond msgpack's 64 bits"),
}
"""msgpack extension code -> (the type it holds, how its payload is encoded)."""

_ID_NOTE: Final = "msgpack bin of 16 bytes"
_UUID_FIELDS: Final = frozenset({"run_id", "step_id", "artifact_version_id", "model_version_id"})


def _description(stream: str) -> str:
    rows = "\n".join(
        f"| {code} | `{name}` | {payload} |" for code, (name, payload) in EXTENSION_TYPES.items()
    )
    return f"""Every fact about ML pipelines that metastream records, as an immutable event on the \
Redis stream `{stream}`.

**Entries.** Each stream entry has one field, `{constants.DATA_FIELD}`, holding one event encoded \
with msgpack: a map whose `type` names the event (the message names below). Read the stream in \
a consumer group of your own (`XGROUP CREATE {stream} <group> 0 MKSTREAM` to see what is still \
in the stream; entries all groups have acked are trimmed, and the event log keeps everything).

**Ids.** `event_id` is 16 bytes (msgpack bin) in UUIDv7 layout, time-ordered; it identifies the \
event: delivery is at least once, so deduplicate by it. Entity ids (`run_id`, `step_id`, \
`artifact_version_id`, `model_version_id`, a target's `id`) are 16 bytes too: the UUID's bytes. \
`ts` is the producer's wall-clock time in Unix seconds.

**Metadata values** keep their Python types. Plain values are msgpack nil, bool, int (64-bit), \
float, str, array and map (str keys); everything else is a msgpack extension type:

| code | type | payload |
| --- | --- | --- |
{rows}

**Evolution.** New fields are added with defaults only; a field is never renamed or retyped; an \
event type (its `type` tag) is never renamed. A reader must ignore fields it does not know and \
events whose `type` it does not know."""


def _msgpack_notes(schema: dict[str, Any]) -> None:
    """Say, for each id field, what it is on the wire (JSON Schema describes JSON)."""
    properties = schema.get("properties", {})
    for name, field in properties.items():
        if name == "event_id":
            field.update({"x-msgpack": _ID_NOTE, "description": "the event's id (UUIDv7)"})
        elif name in _UUID_FIELDS or (name == "id" and "kind" in properties):
            for option in field.get("anyOf", [field]):
                if option.get("format") == "uuid":
                    option["x-msgpack"] = _ID_NOTE
        elif name == "metadata":
            field["additionalProperties"] = {"$ref": "#/components/schemas/MetadataValue"}
    if "event_id" in properties:  # producers always write both; decoding requires the id
        schema["required"] = sorted({*schema.get("required", []), "event_id", "ts"})


def _asyncapi_discriminators(node: Any) -> None:
    """AsyncAPI's ``discriminator`` is the tag's property name, not OpenAPI's object.

    The tag values stay in each alternative's ``type`` enum.
    """
    if isinstance(node, dict):
        found = node.get("discriminator")
        if isinstance(found, dict):
            node["discriminator"] = found["propertyName"]
        for value in node.values():
            _asyncapi_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _asyncapi_discriminators(value)


def _metadata_value_schema() -> dict[str, Any]:
    return {
        "description": "A metadata value: plain msgpack, or an extension type (see the table in "
        "info.description). Maps have str keys.",
        "x-msgpack-extensions": {
            str(code): {"type": name, "payload": payload}
            for code, (name, payload) in EXTENSION_TYPES.items()
        },
    }


def asyncapi_document(stream: str = constants.STREAM) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the event stream ``stream``."""
    from metastream import __version__

    (_, schemas) = msgspec.json.schema_components(
        EVENT_TYPES, ref_template="#/components/schemas/{name}"
    )
    schemas = copy.deepcopy(schemas)
    for schema in schemas.values():
        _msgpack_notes(schema)
        _asyncapi_discriminators(schema)
    schemas["MetadataValue"] = _metadata_value_schema()
    messages = {
        event.__name__: {
            "name": event.__name__,
            "title": event.__name__,
            "summary": (event.__doc__ or event.__name__).strip().split("\n\n")[0],
            "contentType": "application/msgpack",
            "payload": {"$ref": f"#/components/schemas/{event.__name__}"},
        }
        for event in EVENT_TYPES
    }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "metastream events",
            "version": CONTRACT_VERSION,
            "description": _description(stream),
            "x-metastream-version": __version__,
        },
        "channels": {
            "events": {
                "address": stream,
                "description": f"The Redis stream; each entry's `{constants.DATA_FIELD}` field "
                "holds one msgpack-encoded event.",
                "messages": refs,
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "summary": "A subscriber reads events in a consumer group of its own "
                "(XREADGROUP), and acknowledges each once handled (XACK).",
                "messages": [{"$ref": f"#/channels/events/messages/{name}"} for name in messages],
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def asyncapi_json(stream: str = constants.STREAM) -> str:
    """The document as JSON text, as ``docs/asyncapi.json`` holds it (stable key order)."""
    return json.dumps(asyncapi_document(stream), indent=2, ensure_ascii=False) + "\n"
