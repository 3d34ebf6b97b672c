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
# Start each millisecond in the lower half of the counter space, so that
# billions of ids fit into one millisecond before it has to borrow the next.
_SEED_MASK = (1 << (_COUNTER_BITS - 1)) - 1
_VERSION_BITS = 0x7 << 12  # in the high half: 48 bits of ms, 4 of version, 12 of rand_a
_VARIANT = 0b10 << 62  # in the low half, above 62 bits of rand_b
_RAND_B_MASK = (1 << 62) - 1
_pack_halves = struct.Struct(">QQ").pack  # two 64-bit halves: cheaper than 128-bit int maths

_LO_MAX = _VARIANT | _RAND_B_MASK
_FIRST_LO = _VARIANT
_RAND_A_MAX = 0xFFF
_lock = threading.Lock()
_last_ms = 0
# The id being handed out, as its two 64-bit halves: counting in them (a carry from rand_b
# into rand_a now and then) costs ~0.64 µs an id here, the 74-bit counter ~0.93 µs.
_hi = 0
_lo = 0
_time_ns = time.time_ns


def _reseed_after_fork() -> None:
    global _last_ms, _lock, _hi, _lo
    _lock = threading.Lock()
    _last_ms = 0
    _hi = _lo = 0


os.register_at_fork(after_in_child=_reseed_after_fork)


def _start(ms: int) -> None:
    """Begin millisecond ``ms`` at a random counter in the lower half of its space."""
    global _last_ms, _hi, _lo
    counter = int.from_bytes(os.urandom(10)) & _SEED_MASK
    _last_ms = ms
    _hi = (ms << 16) | _VERSION_BITS | (counter >> 62)
    _lo = _VARIANT | (counter & _RAND_B_MASK)


def new_id() -> bytes:
    """Return a new id as 16 bytes, greater than every id this process made."""
    global _hi, _lo
    now = _time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _start(now)
        elif _lo < _LO_MAX:
            _lo += 1
        elif _hi & _RAND_A_MAX != _RAND_A_MAX:  # rand_b is full: carry into rand_a
            _hi += 1
            _lo = _FIRST_LO
        else:  # counter exhausted within one millisecond: borrow the next one
            _start(_last_ms + 1)
        return _pack_halves(_hi, _lo)


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
