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
from metastream.schemas.text import escape_controls, has_control_characters
from metastream.schemas.values import DEFAULT_MAX_DEPTH, MAX_INT_BITS, unencodable


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
key_text = st.text(max_size=5).filter(lambda k: not has_control_characters(k))
"""Dict keys: control characters are refused in keys (tested below)."""
hashable = st.one_of(st.text(max_size=5), st.integers(), st.builds(Uri, st.text(max_size=5)))
values = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashable, max_size=4),
        st.frozensets(hashable, max_size=4),
        st.dictionaries(key_text, inner, max_size=4),
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
    with pytest.raises(ValueError, match="'loop'.*nested more than 64 levels deep"):
        prepare_metadata({"loop": loop})
    with pytest.raises(ValueError, match="'loop'.*nested too deeply"):
        prepare_value(loop, "loop")  # no limit given: the interpreter's own


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


# -- limits at the call (issue 7, findings 2 and 10) ---------------------------


def nested(depth: int, make: Any = lambda inner: [inner]) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize(
    "make",
    [lambda v: [v], lambda v: (v,), lambda v: {"a": v}, lambda v: [1, {"card": (2, v)}]],
)
def test_nesting_deeper_than_the_limit_is_refused_naming_the_key(make: Any) -> None:
    deep = nested(400, make)
    with pytest.raises(ValueError, match=r"metadata 'deep': .*more than 64 levels deep.*"):
        prepare_metadata({"ok": 1, "deep": deep})
    with pytest.raises(ValueError, match="METASTREAM_MAX_DEPTH"):
        prepare_metadata({"deep": deep})


def test_nesting_up_to_the_limit_is_accepted_and_the_limit_is_a_parameter() -> None:
    assert DEFAULT_MAX_DEPTH == 64
    at_limit = nested(64)
    assert same(decode_value(encode_value(prepare_metadata({"k": at_limit}))), {"k": at_limit})
    with pytest.raises(ValueError, match="more than 64 levels"):
        prepare_metadata({"k": nested(65)})
    with pytest.raises(ValueError, match="more than 3 levels"):
        prepare_metadata({"k": nested(4)}, max_depth=3)
    prepare_metadata({"k": nested(200)}, max_depth=200)


@pytest.mark.parametrize(
    "key",
    ["a\x00b", "\x1b[2J", "title\x1b]0;pwned\x07", "line\r", "tab\t", "\x9b31m", "\u202eevil"],
)
def test_keys_with_control_characters_are_refused_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match="contains a control character") as raised:
        prepare_metadata({key: 1})
    message = str(raised.value)
    assert repr(key) in message  # named, escaped
    assert not has_control_characters(message)
    with pytest.raises(ValueError, match="'card': the dict key .* contains a control character"):
        prepare_metadata({"card": {"fine": 1, key: 2}})


def test_printable_keys_are_still_fine() -> None:
    keys = {"accuracy", "naïve Bayes", "précision@5", "損失", "emoji 🧪", "a b", "back\\slash"}
    assert prepare_metadata(dict.fromkeys(keys, 1)) == dict.fromkeys(keys, 1)
    assert prepare_metadata({"card": dict.fromkeys(keys, 1)}) == {"card": dict.fromkeys(keys, 1)}


def test_a_surrogate_in_a_value_is_explained_naming_the_key() -> None:
    for value in ["\ud800", ["ok", ("x\udcff",)], {"card": {"f": "\ud800"}}]:
        prepared = prepare_metadata({"fine": "text", "bad": value})
        with pytest.raises(UnicodeEncodeError) as failed:
            encode_value(prepared)
        error = unencodable(prepared, failed.value)
        assert isinstance(error, ValueError)
        assert str(error).startswith("metadata 'bad': ")
        assert "surrogate" in str(error)


def test_a_5000_digit_int_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"metadata 'big': an int of 16,610 bits") as raised:
        prepare_metadata({"big": 10**5000})
    assert "log it as a str" in str(raised.value)
    with pytest.raises(ValueError, match="'nested'"):
        prepare_metadata({"nested": [1, -(10**5000)]})
    largest = 2**MAX_INT_BITS - 1
    assert round_trip(largest) == largest


def test_numpy_datetime64_becomes_a_datetime() -> None:
    expected = datetime.datetime(2026, 11, 23, 15, 0, 1, 250000)
    for unit in ("s", "ms", "us", "ns"):
        value = np.datetime64("2026-11-23T15:00:01.250", unit) if unit != "s" else None
        if value is None:
            value = np.datetime64("2026-11-23T15:00:01", "s")
            assert same(round_trip(value), expected.replace(microsecond=0))
            continue
        assert same(round_trip(value), expected)
    assert same(round_trip(np.datetime64("2026-11-23", "D")), datetime.datetime(2026, 11, 23))
    assert same(
        round_trip([np.datetime64("2026-01-01T00:00:00", "us")]), [datetime.datetime(2026, 1, 1)]
    )


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (np.datetime64("2026-11-23T15:00:00.000000001", "ns"), ValueError, "more precision"),
        (np.datetime64("NaT"), ValueError, "'NaT' is not a time"),
        (np.datetime64("12000-01-01", "D"), ValueError, "is not a time"),
        (np.timedelta64(5, "s"), TypeError, "timedelta64 is not supported"),
    ],
)
def test_numpy_times_that_would_change_meaning_are_refused_naming_the_key(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=rf"metadata 'when': .*{message}"):
        prepare_metadata({"when": value})


def test_escape_controls_escapes_exactly_the_control_characters() -> None:
    raw = "a\x1b[2Jb\x00\r\n\t\x7f\x9b\u2028\u202e\ud800"
    assert escape_controls(raw) == r"a\x1b[2Jb\x00\x0d\x0a\x09\x7f\x9b\u2028\u202e\ud800"
    for fine in ["plain", "naïve 損失 🧪", "C:\\temp\\x1b", ""]:
        assert escape_controls(fine) == fine
    text = "".join(map(chr, range(0x3000)))
    escaped = escape_controls(text)
    assert not has_control_characters(escaped)
    assert escape_controls(escaped) == escaped
