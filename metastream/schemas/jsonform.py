"""Metadata values in JSON: one documented form that keeps every type.

Used by every ``--json`` output of the CLI and by the HTTP API. Plain
JSON where JSON already says what the value is; a tagged object
``{"$type": TAG, "value": ...}`` where it does not:

=====================  ==========================================================
Python value           JSON
=====================  ==========================================================
str, bool, None        string, ``true``/``false``, ``null``
int, abs <= 2**53 - 1  number without fraction or exponent (``3``)
other int              ``{"$type": "int", "value": "<decimal text>"}`` (past 2**53
                       a JavaScript number loses digits)
finite float           number with a fraction or exponent (``3.0``, ``1e+20``)
NaN, inf, -inf         ``{"$type": "float", "value": "NaN" | "Infinity" | "-Infinity"}``
list                   array
dict (str keys)        object; one with a ``"$type"`` key is written
                       ``{"$type": "dict", "value": {...}}`` so it is never read as a tag
tuple                  ``{"$type": "tuple", "value": [...]}``
set, frozenset         ``{"$type": "set" | "frozenset", "value": [...]}`` (sorted when
                       the items can be sorted)
datetime               ``{"$type": "datetime", "value": "<ISO 8601>"}`` (an offset only
                       when the datetime had one)
Uri, Path, DType       ``{"$type": "uri" | "path" | "dtype", "value": "<text>"}``
StorageSize            ``{"$type": "storage_size", "value": <bytes>}``: a number, or
                       decimal text past 2**53
=====================  ==========================================================

Items inside containers follow the same rules, at any depth. Reading a
number: one written with a fraction or an exponent is a float, one without is
an int (``json.loads`` and msgspec do this; in JavaScript both are numbers).
:func:`from_json_form` reverses :func:`json_form` exactly; the result of
``json_form`` holds only JSON types and no NaN, so ``json.dumps(...,
allow_nan=False)`` accepts it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from metastream.schemas.types import DType, Path, StorageSize, Uri

TYPE_KEY: Final = "$type"
VALUE_KEY: Final = "value"
MAX_SAFE_INT: Final = 2**53 - 1
"""The largest int a JSON reader that uses doubles (JavaScript) keeps exactly."""

_FLOAT_NAMES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_TEXT_TAGS: Final[dict[type, str]] = {Uri: "uri", Path: "path", DType: "dtype"}


def _tagged(tag: str, value: Any) -> dict[str, Any]:
    return {TYPE_KEY: tag, VALUE_KEY: value}


def _int_form(value: int) -> Any:
    return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else _tagged("int", str(value))


def _items(values: Any) -> list[Any]:
    out = []
    for item in values:
        out.append(json_form(item))
    return out


def _sorted(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values, key=lambda v: (type(v).__name__, v))
    except TypeError:
        return list(values)


def json_form(value: Any) -> Any:
    """``value`` (a metadata value of any supported type) in the documented JSON form."""
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        return _int_form(value)
    if cls is float:
        if math.isfinite(value):
            return value
        return _tagged(
            "float", "NaN" if math.isnan(value) else str(value).replace("inf", "Infinity")
        )
    if cls is dict:
        out = {}
        for key, item in value.items():
            out[key] = json_form(item)
        return _tagged("dict", out) if TYPE_KEY in out else out
    if cls is list:
        return _items(value)
    if cls is tuple:
        return _tagged("tuple", _items(value))
    if cls is set or cls is frozenset:
        return _tagged(cls.__name__, _items(_sorted(value)))
    if cls is datetime.datetime:
        return _tagged("datetime", value.isoformat())
    tag = _TEXT_TAGS.get(cls)
    if tag is not None:
        return _tagged(tag, str.__str__(value))
    if cls is StorageSize:
        size = int(value)
        return _tagged("storage_size", size if size <= MAX_SAFE_INT else str(size))
    raise TypeError(f"no JSON form for values of type {cls.__module__}.{cls.__qualname__}")


def metadata_json_form(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A ``{key: value}`` mapping with each value in the JSON form (keys stay as they are)."""
    return {key: json_form(value) for key, value in metadata.items()}


def _int_of(data: Any) -> int:
    if type(data) is int:
        return data
    if type(data) is str:
        return int(data)
    raise ValueError(f"expected an int or its decimal text, got {data!r}")


def _float_of(data: Any) -> float:
    try:
        return _FLOAT_NAMES[data]
    except (KeyError, TypeError):
        raise ValueError(f"expected 'NaN', 'Infinity' or '-Infinity', got {data!r}") from None


def _text_of(cls: Callable[[str], Any]) -> Callable[[Any], Any]:
    def read(data: Any) -> Any:
        if type(data) is not str:
            raise ValueError(f"expected a string, got {data!r}")
        return cls(data)

    return read


def _list_of(data: Any) -> list[Any]:
    if type(data) is not list:
        raise ValueError(f"expected an array, got {data!r}")
    out = []
    for item in data:
        out.append(from_json_form(item))
    return out


def _dict_of(data: Any) -> dict[str, Any]:
    if type(data) is not dict:
        raise ValueError(f"expected an object, got {data!r}")
    out = {}
    for key, item in data.items():
        out[key] = from_json_form(item)
    return out


def _datetime_of(data: Any) -> datetime.datetime:
    if type(data) is not str:
        raise ValueError(f"expected an ISO 8601 string, got {data!r}")
    return datetime.datetime.fromisoformat(data)


_READERS: Final[dict[str, Callable[[Any], Any]]] = {
    "int": _int_of,
    "float": _float_of,
    "dict": _dict_of,
    "tuple": lambda data: tuple(_list_of(data)),
    "set": lambda data: set(_list_of(data)),
    "frozenset": lambda data: frozenset(_list_of(data)),
    "datetime": _datetime_of,
    "uri": _text_of(Uri),
    "path": _text_of(Path),
    "dtype": _text_of(DType),
    "storage_size": lambda data: StorageSize(_int_of(data)),
}


def from_json_form(data: Any) -> Any:
    """The metadata value that :func:`json_form` turned into ``data``.

    Raises ``ValueError`` for an object with an unknown ``"$type"``, or one
    whose ``"value"`` does not fit its tag.
    """
    cls = type(data)
    if cls is dict:
        if TYPE_KEY not in data:
            return _dict_of(data)
        tag = data[TYPE_KEY]
        reader = _READERS.get(tag) if type(tag) is str else None
        if reader is None or data.keys() != {TYPE_KEY, VALUE_KEY}:
            raise ValueError(
                f"not a metadata value in JSON form: {TYPE_KEY} {tag!r} with keys {sorted(data)}"
            )
        return reader(data[VALUE_KEY])
    if cls is list:
        return _list_of(data)
    if cls in (str, int, float, bool) or data is None:
        return data
    raise ValueError(f"not a JSON value: {cls.__name__}")


__all__ = [
    "MAX_SAFE_INT",
    "TYPE_KEY",
    "VALUE_KEY",
    "from_json_form",
    "json_form",
    "metadata_json_form",
]
