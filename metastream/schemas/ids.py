"""Time-ordered 128-bit ids in the UUIDv7 layout.

An id is 16 big-endian bytes: 48 bits of Unix milliseconds, the version
nibble 7, then 74 bits that start random at each new millisecond and count
up within it (RFC 9562, "monotonic random"). Ids made by one process are
strictly increasing, so byte order is time order: the SQLite unique index
over them stays append-only (random UUIDs made inserts ~4x slower here).

After ``fork()`` the child starts a fresh random counter, so a parent and
its data-loader children never hand out the same id.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import uuid

_COUNTER_BITS = 74
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
# Start each millisecond in the lower half of the counter space, so that
# billions of ids fit into one millisecond before it has to borrow the next.
_SEED_MASK = (1 << (_COUNTER_BITS - 1)) - 1
_VERSION_BITS = 0x7 << 12  # in the high half: 48 bits of ms, 4 of version, 12 of rand_a
_VARIANT = 0b10 << 62  # in the low half, above 62 bits of rand_b
_RAND_B_MASK = (1 << 62) - 1
_pack_halves = struct.Struct(">QQ").pack  # two 64-bit halves: cheaper than 128-bit int maths

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _reseed_after_fork() -> None:
    global _last_ms, _counter, _lock
    _lock = threading.Lock()
    _last_ms = 0
    _counter = 0


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_id() -> bytes:
    """Return a new id as 16 bytes, greater than every id this process made."""
    global _last_ms, _counter
    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _last_ms = now
            _counter = int.from_bytes(os.urandom(10)) & _SEED_MASK
        elif _counter < _COUNTER_MAX:
            _counter += 1
        else:  # counter exhausted within one millisecond: borrow the next one
            _last_ms += 1
            _counter = int.from_bytes(os.urandom(10)) & _SEED_MASK
        ms, counter = _last_ms, _counter
    return _pack_halves(
        (ms << 16) | _VERSION_BITS | (counter >> 62), _VARIANT | (counter & _RAND_B_MASK)
    )


def new_uuid() -> uuid.UUID:
    """A new time-ordered id as a :class:`uuid.UUID`."""
    return uuid.UUID(bytes=new_id())


def id_time(event_id: bytes) -> float:
    """The Unix time (seconds) embedded in a time-ordered id."""
    return int.from_bytes(event_id[:6], "big") / 1000.0


def as_uuid(value: uuid.UUID | str | bytes) -> uuid.UUID:
    """Coerce a UUID, its string form or its 16 bytes to :class:`uuid.UUID`."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes):
        return uuid.UUID(bytes=value)
    return uuid.UUID(value)


def parse_uuid(text: str) -> uuid.UUID | None:
    """``text`` as a UUID if it is one (any standard spelling), else ``None``."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
