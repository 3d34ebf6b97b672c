"""Metadata values in JSON: valid JSON, every type kept, and read back exactly."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given

from metastream.schemas import DType, Path, StorageSize, Uri
from metastream.schemas.jsonform import (
    MAX_SAFE_INT,
    from_json_form,
    json_form,
    metadata_json_form,
)
from tests.unit.test_values import same, values


def through_json(value: Any) -> Any:
    text = json.dumps(json_form(value), allow_nan=False)
    return from_json_form(json.loads(text))


@given(values)
def test_any_value_survives_json_with_exactly_its_types(value: Any) -> None:
    assert same(through_json(value), value)


@given(values)
def test_the_form_is_plain_json_for_any_json_library(value: Any) -> None:
    form = json_form(value)
    # strict JSON (no NaN/Infinity), and msgspec reads back what json wrote
    assert msgspec.json.decode(json.dumps(form, allow_nan=False)) == form


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("text", "text"),
        (3, 3),
        (MAX_SAFE_INT, MAX_SAFE_INT),
        (-MAX_SAFE_INT, -MAX_SAFE_INT),
        (2**53, {"$type": "int", "value": "9007199254740992"}),
        (-(2**70), {"$type": "int", "value": str(-(2**70))}),
        (2.5, 2.5),
        (float("nan"), {"$type": "float", "value": "NaN"}),
        (float("inf"), {"$type": "float", "value": "Infinity"}),
        (-float("inf"), {"$type": "float", "value": "-Infinity"}),
        (True, True),
        (None, None),
        ([1, "a"], [1, "a"]),
        ((1, 2), {"$type": "tuple", "value": [1, 2]}),
        ({3, 1, 2}, {"$type": "set", "value": [1, 2, 3]}),
        (frozenset({"b", "a"}), {"$type": "frozenset", "value": ["a", "b"]}),
        ({"a": {"b": 1}}, {"a": {"b": 1}}),
        (
            {"$type": "uri", "value": "x"},
            {"$type": "dict", "value": {"$type": "uri", "value": "x"}},
        ),
        (
            datetime.datetime(2026, 11, 23, 15, 0, 0, 123456),
            {"$type": "datetime", "value": "2026-11-23T15:00:00.123456"},
        ),
        (
            datetime.datetime(2026, 11, 23, 15, tzinfo=datetime.UTC),
            {"$type": "datetime", "value": "2026-11-23T15:00:00+00:00"},
        ),
        (Uri("gs://b/d.csv"), {"$type": "uri", "value": "gs://b/d.csv"}),
        (Path("/a/b.py"), {"$type": "path", "value": "/a/b.py"}),
        (DType("float64"), {"$type": "dtype", "value": "float64"}),
        (StorageSize(2_500_000), {"$type": "storage_size", "value": 2_500_000}),
        (StorageSize(2**60), {"$type": "storage_size", "value": str(2**60)}),
    ],
)
def test_the_documented_form(value: Any, form: Any) -> None:
    assert json_form(value) == form
    assert same(from_json_form(form), value)


def test_json_numbers_keep_int_and_float_apart() -> None:
    text = json.dumps(metadata_json_form({"i": 2, "f": 2.0, "big": 1e300}), allow_nan=False)
    assert text == '{"i": 2, "f": 2.0, "big": 1e+300}'
    back = {k: from_json_form(v) for k, v in json.loads(text).items()}
    assert same(back, {"i": 2, "f": 2.0, "big": 1e300})


def test_nan_never_reaches_the_text() -> None:
    form = metadata_json_form({"nan": math.nan, "deep": [(math.inf, {"x": -math.inf})]})
    text = json.dumps(form, allow_nan=False)
    assert "NaN" not in text.replace('"NaN"', "")
    assert "Infinity" not in text.replace('"Infinity"', "").replace('"-Infinity"', "")


@pytest.mark.parametrize(
    "data",
    [
        {"$type": "complex", "value": "1+2j"},
        {"$type": "uri"},
        {"$type": "uri", "value": "x", "extra": 1},
        {"$type": "uri", "value": 3},
        {"$type": "float", "value": "nan"},
        {"$type": "int", "value": "12x"},
        {"$type": "tuple", "value": "ab"},
        {"$type": 1, "value": 1},
    ],
)
def test_unknown_or_malformed_tags_are_refused(data: Any) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        from_json_form(data)


def test_types_without_a_form_are_refused() -> None:
    with pytest.raises(TypeError, match="no JSON form for values of type builtins.bytes"):
        json_form(b"x")
