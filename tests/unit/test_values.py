"""Metadata values: validated at the call, and every type comes back exactly."""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metastream.schemas import (
    ById,
    DType,
    MetadataLogged,
    Path,
    StorageSize,
    Uri,
    check_sizes,
    decode_event,
    decode_value,
    encode_event,
    encode_value,
    prepare_metadata,
    prepare_value,
    values_equal,
)


def round_trip(value: Any) -> Any:
    return decode_value(encode_value(prepare_value(value)))


def same(a: Any, b: Any) -> bool:
    """Equal, with exactly the same types at every depth (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, set | frozenset):
        return a == b and {type(x) for x in a} == {type(x) for x in b}
    return bool(a == b)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        0,
        -(2**63),
        2**64 - 1,
        2**100,
        -(2**70),
        1.5,
        float("nan"),
        float("inf"),
        -float("inf"),
        True,
        False,
        None,
        [1, "a", None],
        (1, 2),
        (),
        {1, 2, 3},
        frozenset({"a", "b"}),
        {"a": 1, "b": {"c": (1, {2})}},
        datetime.datetime(2026, 11, 23, 15, 0, 0, 123456),
        datetime.datetime(
            2026, 11, 23, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        Uri("gs://bucket/data.csv"),
        Path("/scripts/preprocess.py"),
        DType("float64"),
        StorageSize(2_500_000),
        {"nested": [Uri("s3://x"), (StorageSize(1), DType("int"))], "set": {Path("/a")}},
    ],
)
def test_values_come_back_with_exactly_their_types(value: Any) -> None:
    assert same(round_trip(value), value)


leaf = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.datetimes(),
    st.builds(Uri, st.text(max_size=8)),
    st.builds(Path, st.text(max_size=8)),
    st.builds(DType, st.text(max_size=8)),
    st.builds(StorageSize, st.integers(min_value=0, max_value=2**40)),
)
hashable = st.one_of(st.text(max_size=5), st.integers(), st.builds(Uri, st.text(max_size=5)))
values = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashable, max_size=4),
        st.frozensets(hashable, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(values)
def test_any_nesting_round_trips_exactly(value: Any) -> None:
    assert same(round_trip(value), value)


def test_metadata_survives_the_event_codec() -> None:
    metadata = {"a": (1, 2), "b": {"c": StorageSize(3)}, "d": Uri("x://y")}
    event = MetadataLogged(
        target=ById(kind="step_run", id=uuid.uuid4()), metadata=prepare_metadata(metadata)
    )
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded, MetadataLogged)
    assert same(decoded.metadata, metadata)
    assert decoded.event_id == event.event_id


def test_numpy_scalars_are_converted_with_item() -> None:
    prepared = prepare_metadata(
        {"f": np.float64(0.5), "i": np.int64(3), "b": np.bool_(True), "n": [np.float32(1.5)]}
    )
    decoded = decode_value(encode_value(prepared))
    assert same(decoded, {"f": 0.5, "i": 3, "b": True, "n": [1.5]})


def test_numpy_arrays_are_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"'arr'.*tolist\(\)"):
        prepare_metadata({"arr": np.arange(3)})


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        ("", ValueError, "empty"),
        ("a:b", ValueError, r"'a:b' contains ':'"),
        ("step::key", ValueError, "contains ':'"),
        ("k" * 256, ValueError, "256 characters long; the limit is 255"),
        (3, TypeError, "keys must be str"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(
    key: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        prepare_metadata({key: 1})


def test_a_key_of_255_characters_is_fine() -> None:
    assert prepare_metadata({"k" * 255: 1}) == {"k" * 255: 1}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"bytes", "builtins.bytes"),
        (object(), "builtins.object"),
        ({1: "x"}, "dict keys must be str"),
        ([1, {"a": b"x"}], "builtins.bytes"),
        (datetime.date(2026, 1, 1), "datetime.date"),
    ],
)
def test_unsupported_values_are_refused_naming_the_key(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=rf"metadata 'the_key'.*{message}"):
        prepare_metadata({"the_key": value})


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="'loop'.*nested too deeply"):
        prepare_metadata({"loop": loop})


def test_values_over_the_size_limit_are_refused_naming_the_key() -> None:
    prepared = prepare_metadata({"small": "x", "big": "y" * 70_000})
    with pytest.raises(ValueError, match=r"'big'.*70,00\d bytes; the limit is 65,536"):
        check_sizes(prepared, 64 * 1024)
    check_sizes(prepare_metadata({"ok": "y" * 60_000}), 64 * 1024)


def test_the_callers_mapping_is_not_modified() -> None:
    original = {"t": (1, 2), "plain": 1.0}
    prepare_metadata(original)
    assert original == {"t": (1, 2), "plain": 1.0}
    assert type(original["t"]) is tuple


def test_sets_encode_the_same_bytes_whatever_their_order() -> None:
    a = encode_value(prepare_value({"z", "a", "m"}))
    b = encode_value(prepare_value({"m", "z", "a"}))
    assert a == b


def test_values_equal_compares_types_and_nan() -> None:
    assert values_equal([float("nan")], [float("nan")])
    assert not values_equal(1, True)
    assert not values_equal({"a": 1}, {"a": 1.0})
