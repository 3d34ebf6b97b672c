"""Validation and encoding of metadata values.

``prepare_metadata`` checks a ``{key: value}`` mapping at the call site and
returns something the msgpack encoder can write without losing a type.
msgspec writes tuples and sets as plain arrays and naive datetimes as
strings, so those are wrapped here in :class:`_Tagged` and written as msgpack
extension types; the special ``str``/``int`` subclasses reach the encoder's
``enc_hook`` by themselves. The value decoder's ``ext_hook`` turns every
extension back into the exact type that went in.

The limits checked here, each with a message naming the key: keys (str,
non-empty, no ``:``, no control character, at most 255 characters), nesting
depth (``max_depth`` containers), ints (at most ``MAX_INT_BITS`` bits, so that
any Python can read the decimal text back), and str values UTF-8 can encode
(checked only when encoding fails, see :func:`unencodable`). Sizes are checked
by the caller, on the encoded event.
"""

from __future__ import annotations

import datetime
import math
import sys
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from metastream.schemas.text import CONTROL_CHARACTERS, has_control_characters
from metastream.schemas.types import DType, Path, StorageSize, Uri

MAX_KEY_LENGTH: Final = 255
DEFAULT_MAX_VALUE_BYTES: Final = 64 * 1024
DEFAULT_MAX_DEPTH: Final = 64
"""Containers inside containers in one value (``METASTREAM_MAX_DEPTH``)."""
MAX_INT_BITS: Final = 14_000
"""Largest int, in bits (about 4,200 decimal digits). Ints beyond 64 bits are
stored as decimal text, and Python refuses to convert more than 4,300 digits
by default (``sys.set_int_max_str_digits``): a bigger one could be written by
a process that raised the limit and not read back by the consumer."""

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


def _sorted_items(
    values: set[Any] | frozenset[Any], key: str, depth: int, strict: bool
) -> list[Any]:
    try:  # a deterministic order makes the stored bytes reproducible
        ordered = sorted(values, key=_sort_key)
    except TypeError:
        ordered = list(values)
    return [_walk(v, key, depth, strict) for v in ordered]


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


class _TooDeep(Exception):
    """Raised inside :func:`_walk`; turned into a ``ValueError`` naming the key."""


def _walk(value: Any, key: str, depth: int, strict: bool) -> Any:
    """``value`` ready for the encoder; ``depth`` is how many more containers may nest.

    ``strict``: also refuse control characters in dict keys (new values only:
    a card that an older producer accepted must still merge in the views).
    """
    cls = type(value)
    if cls in _LEAF_TYPES:
        return value
    if cls is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        return _Tagged(EXT_BIG_INT, _big_int_text(value, key))
    if cls is datetime.datetime:
        return _Tagged(EXT_DATETIME, value.isoformat())
    if cls in _CONTAINER_TYPES:
        if depth <= 0:
            raise _TooDeep
        depth -= 1
        if cls is dict:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    raise TypeError(
                        f"metadata {key!r}: dict keys must be str, got {type(k).__name__} {k!r}"
                    )
                if strict and has_control_characters(k):
                    raise ValueError(
                        f"metadata {key!r}: the dict key {k!r} contains a control character "
                        f"({_first_control(k)}); use printable characters"
                    )
                out[k] = _walk(v, key, depth, strict)
            return out
        if cls is list:
            return [_walk(v, key, depth, strict) for v in value]
        if cls is tuple:
            return _Tagged(EXT_TUPLE, [_walk(v, key, depth, strict) for v in value])
        if cls is set:
            return _Tagged(EXT_SET, _sorted_items(value, key, depth, strict))
        return _Tagged(EXT_FROZENSET, _sorted_items(value, key, depth, strict))
    if cls.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _walk(_numpy_scalar(value, key), key, depth, strict)
    hint = " (convert arrays with .tolist())" if cls.__module__ == "numpy" else ""
    raise TypeError(
        f"metadata {key!r}: values of type {cls.__module__}.{cls.__qualname__} are not "
        f"supported{hint}; use str, int, float, bool, None, datetime, list, tuple, set, "
        "dict with str keys, or Uri, Path, DType, StorageSize"
    )


_CONTAINER_TYPES: Final = frozenset({dict, list, tuple, set, frozenset})


def _big_int_text(value: int, key: str) -> str:
    bits = value.bit_length()
    if bits > MAX_INT_BITS:
        raise ValueError(
            f"metadata {key!r}: an int of {bits:,} bits (about {int(bits * 0.30103) + 1:,} "
            f"decimal digits) is too large; ints up to {MAX_INT_BITS:,} bits (about "
            f"{int(MAX_INT_BITS * 0.30103):,} digits) are supported; log it as a str"
        )
    return str(value)


def _numpy_scalar(value: Any, key: str) -> Any:
    """A numpy scalar as the Python value it stands for (``np.float64`` -> float, ...).

    ``.item()`` alone would turn a nanosecond ``datetime64`` and any
    ``timedelta64`` into a bare int: a datetime64 becomes a naive datetime
    (microseconds kept; finer precision or NaT is refused), a timedelta64 is
    refused.
    """
    kind = type(value).__name__
    if kind == "timedelta64":
        raise TypeError(
            f"metadata {key!r}: numpy.timedelta64 is not supported; log it as a number of "
            "seconds (value / np.timedelta64(1, 's')) or as a str"
        )
    if kind != "datetime64":
        return value.item()
    micros = value.astype("datetime64[us]")
    converted = micros.item()
    if type(converted) is not datetime.datetime:  # NaT, or a year outside 1..9999
        raise ValueError(
            f"metadata {key!r}: numpy.datetime64 {str(value)!r} is not a time a Python "
            "datetime can hold; log it as a str"
        )
    if micros != value:
        raise ValueError(
            f"metadata {key!r}: numpy.datetime64 {str(value)!r} has more precision than "
            "microseconds, which is what datetimes keep; round it first "
            "(value.astype('datetime64[us]')) or log it as a str"
        )
    return converted


def _first_control(text: str) -> str:
    found = CONTROL_CHARACTERS.search(text)
    return repr(found.group()) if found else "?"


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
    if has_control_characters(key):
        raise ValueError(
            f"metadata key {key!r} contains a control character ({_first_control(key)}); "
            "keys are shown in terminals and pages, use printable characters"
        )


def prepare_value(value: Any, key: str = "value", max_depth: int | None = None) -> Any:
    """Check one value and return it in a form the encoder keeps exact.

    ``max_depth`` limits how many containers may nest, and dict keys with
    control characters are refused. ``None`` is for a value that was accepted
    once already (the views re-encode merged cards): no depth limit but the
    interpreter's, no key check.
    """
    try:
        if max_depth is None:
            return _walk(value, key, sys.maxsize, False)
        return _walk(value, key, max_depth, True)
    except _TooDeep:
        raise ValueError(
            f"metadata {key!r}: the value is nested more than {max_depth} levels deep, "
            "the limit (or it contains itself); set METASTREAM_MAX_DEPTH to change the limit"
        ) from None
    except RecursionError:
        raise ValueError(
            f"metadata {key!r}: the value is nested too deeply (or contains itself)"
        ) from None


# Keys already found valid (str, non-empty, no ':', short): most calls log the
# same few metric names, and a set lookup is cheaper than the checks.
_good_keys: set[str] = set()
_GOOD_KEYS_MAX: Final = 100_000


def prepare_metadata(
    metadata: Mapping[str, Any], max_depth: int = DEFAULT_MAX_DEPTH
) -> dict[str, Any]:
    """Validate ``metadata`` and return a dict the encoder writes without loss.

    Raises ``TypeError`` for a non-mapping, a non-str key or an unsupported
    value, and ``ValueError`` for an empty, too long, ``:``- or
    control-character-containing key, a value nested more than ``max_depth``
    containers deep, or an int over ``MAX_INT_BITS``; each message names the
    key. The caller's mapping is never modified.
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
        out[key] = prepare_value(value, key, max_depth)
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


def unencodable(metadata: Mapping[str, Any], error: UnicodeEncodeError) -> ValueError:
    """The error to raise when encoding prepared ``metadata`` failed with ``error``.

    UTF-8 cannot encode a lone surrogate (``"\\ud800"``, what
    ``errors="surrogateescape"`` decoding leaves in a str). Checking every
    str at the call would cost every call; encoding fails anyway, and only
    then is each value encoded again to find the key.
    """
    bad = error.object[error.start : error.end]
    for key, value in metadata.items():
        try:
            _encode(value)
        except UnicodeEncodeError:
            return ValueError(
                f"metadata {key!r}: a str in the value contains {bad!r}, a lone surrogate, "
                "which UTF-8 cannot encode; fix the text (for example decode its bytes with "
                "errors='replace')"
            )
    return ValueError(f"cannot encode {bad!r} (a lone surrogate) as UTF-8: {error.reason}")


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
