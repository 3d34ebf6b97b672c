"""Validation and encoding of metadata values.

``prepare_metadata`` checks a ``{key: value}`` mapping at the call site and
returns something the msgpack encoder can write without losing a type.
msgspec writes tuples and sets as plain arrays and naive datetimes as
strings, so those are wrapped here in :class:`_Tagged` and written as msgpack
extension types; the special ``str``/``int`` subclasses reach the encoder's
``enc_hook`` by themselves. The value decoder's ``ext_hook`` turns every
extension back into the exact type that went in.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from metastream.schemas.types import DType, Path, StorageSize, Uri

MAX_KEY_LENGTH: Final = 255
DEFAULT_MAX_VALUE_BYTES: Final = 64 * 1024

# msgpack extension codes. Never renumber: they are in every stored event.
EXT_URI: Final = 1
EXT_PATH: Final = 2
EXT_DTYPE: Final = 3
EXT_STORAGE_SIZE: Final = 4
EXT_TUPLE: Final = 5
EXT_SET: Final = 6
EXT_FROZENSET: Final = 7
EXT_DATETIME: Final = 8  # ISO 8601 text: keeps naive datetimes naive and the exact UTC offset
EXT_BIG_INT: Final = 9  # decimal text of an int outside msgpack's 64-bit range

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_STR_TYPES: Final[dict[type, int]] = {Uri: EXT_URI, Path: EXT_PATH, DType: EXT_DTYPE}
# Types written as they are; containers are walked.
_LEAF_TYPES: Final = frozenset({str, float, bool, type(None), Uri, Path, DType, StorageSize})


class _Tagged:
    """A value the encoder writes as the msgpack extension ``code``."""

    __slots__ = ("code", "payload")

    def __init__(self, code: int, payload: Any) -> None:
        self.code = code
        self.payload = payload


def _enc_hook(obj: Any) -> Any:
    cls = type(obj)
    if cls is _Tagged:
        return msgspec.msgpack.Ext(obj.code, _encode(obj.payload))
    code = _STR_TYPES.get(cls)
    if code is not None:
        return msgspec.msgpack.Ext(code, str.encode(obj))
    if cls is StorageSize:
        return msgspec.msgpack.Ext(EXT_STORAGE_SIZE, _encode(int(obj)))
    raise NotImplementedError(f"cannot encode {cls.__name__}")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == EXT_URI:
        return Uri(str(data, "utf-8"))
    if code == EXT_PATH:
        return Path(str(data, "utf-8"))
    if code == EXT_DTYPE:
        return DType(str(data, "utf-8"))
    if code == EXT_STORAGE_SIZE:
        return StorageSize(_decode(data))
    if code == EXT_TUPLE:
        return tuple(_decode(data))
    if code == EXT_SET:
        return set(_decode(data))
    if code == EXT_FROZENSET:
        return frozenset(_decode(data))
    if code == EXT_DATETIME:
        return datetime.datetime.fromisoformat(_decode(data))
    if code == EXT_BIG_INT:
        return int(_decode(data))
    raise ValueError(f"unknown metadata extension type {code}")


ENCODER: Final = msgspec.msgpack.Encoder(enc_hook=_enc_hook, uuid_format="bytes")
_encode = ENCODER.encode
VALUE_DECODER: Final = msgspec.msgpack.Decoder(ext_hook=_ext_hook)
_decode = VALUE_DECODER.decode


def encode_value(value: Any) -> bytes:
    """Encode one *prepared* value (see :func:`prepare_value`)."""
    return _encode(value)


def decode_value(data: bytes | memoryview) -> Any:
    """Decode one stored value back to the exact types that were logged."""
    return _decode(data)


def _sorted_items(values: set[Any] | frozenset[Any], key: str) -> list[Any]:
    try:  # a deterministic order makes the stored bytes reproducible
        ordered = sorted(values, key=_sort_key)
    except TypeError:
        ordered = list(values)
    return [_walk(v, key) for v in ordered]


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _walk(value: Any, key: str) -> Any:
    cls = type(value)
    if cls in _LEAF_TYPES:
        return value
    if cls is int:
        return value if _INT_MIN <= value <= _INT_MAX else _Tagged(EXT_BIG_INT, str(value))
    if cls is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(
                    f"metadata {key!r}: dict keys must be str, got {type(k).__name__} {k!r}"
                )
            out[k] = _walk(v, key)
        return out
    if cls is list:
        return [_walk(v, key) for v in value]
    if cls is tuple:
        return _Tagged(EXT_TUPLE, [_walk(v, key) for v in value])
    if cls is set:
        return _Tagged(EXT_SET, _sorted_items(value, key))
    if cls is frozenset:
        return _Tagged(EXT_FROZENSET, _sorted_items(value, key))
    if cls is datetime.datetime:
        return _Tagged(EXT_DATETIME, value.isoformat())
    if cls.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _walk(value.item(), key)  # a numpy scalar: np.float64, np.int64, np.bool_ ...
    hint = " (convert arrays with .tolist())" if cls.__module__ == "numpy" else ""
    raise TypeError(
        f"metadata {key!r}: values of type {cls.__module__}.{cls.__qualname__} are not "
        f"supported{hint}; use str, int, float, bool, None, datetime, list, tuple, set, "
        "dict with str keys, or Uri, Path, DType, StorageSize"
    )


def check_key(key: object) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``key`` is a valid metadata key."""
    if type(key) is not str:
        raise TypeError(f"metadata keys must be str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError("metadata key is empty")
    if ":" in key:
        raise ValueError(
            f"metadata key {key!r} contains ':', which separates step names from keys "
            "in run rollups (step_name::key); use another character"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"metadata key {key[:40]!r}... is {len(key)} characters long; "
            f"the limit is {MAX_KEY_LENGTH}"
        )


def prepare_value(value: Any, key: str = "value") -> Any:
    """Check one value and return it in a form the encoder keeps exact."""
    try:
        return _walk(value, key)
    except RecursionError:
        raise ValueError(
            f"metadata {key!r}: value is nested too deeply (or contains itself)"
        ) from None


# Keys already found valid (str, non-empty, no ':', short): most calls log the
# same few metric names, and a set lookup is cheaper than the checks.
_good_keys: set[str] = set()
_GOOD_KEYS_MAX: Final = 100_000


def prepare_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``metadata`` and return a dict the encoder writes without loss.

    Raises ``TypeError`` for a non-mapping, a non-str key or an unsupported
    value, and ``ValueError`` for an empty, too long or ``:``-containing key;
    each message names the key. The caller's mapping is never modified.
    """
    if type(metadata) is not dict:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        metadata = dict(metadata)
    out: dict[str, Any] | None = None
    known = _good_keys
    for key, value in metadata.items():
        if key not in known:
            check_key(key)
            if len(known) < _GOOD_KEYS_MAX:
                known.add(key)
        cls = type(value)
        if cls in _LEAF_TYPES or (cls is int and _INT_MIN <= value <= _INT_MAX):
            continue
        if out is None:
            out = dict(metadata)
        out[key] = prepare_value(value, key)
    return metadata if out is None else out


def check_sizes(metadata: dict[str, Any], limit: int) -> None:
    """Raise ``ValueError`` naming the first prepared value over ``limit`` bytes."""
    for key, value in metadata.items():
        size = len(_encode(value))
        if size > limit:
            raise ValueError(
                f"metadata {key!r}: encoded value is {size:,} bytes; the limit is {limit:,} "
                "(set METASTREAM_MAX_VALUE_BYTES to change it)"
            )


def is_encoded_map(data: bytes | memoryview) -> bool:
    """Whether an encoded value is a msgpack map (a metadata "card")."""
    first = data[0]
    return 0x80 <= first <= 0x8F or first in (0xDE, 0xDF)


def values_equal(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN and compares types exactly (for tests and diffs)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return bool(a == b)
