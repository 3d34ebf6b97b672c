"""The history index: for each entity, the log positions of its events.

Positions are packed per bucket of 4,096 consecutive positions as unsigned
16-bit little-endian offsets in ascending order: one row per entity and
bucket instead of one per event (a row per event cost more than the rest of
a rebuild). The packing depends only on the set of positions, so incremental
application and a replay write the same bytes.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from typing import Final

BUCKET_BITS: Final = 12
_NATIVE_LITTLE: Final = sys.byteorder == "little"


def pack(offsets: Iterable[int]) -> bytes:
    """Offsets (sorted, unique, each < 4096) as little-endian uint16."""
    packed = array("H", offsets)
    if not _NATIVE_LITTLE:
        packed.byteswap()
    return packed.tobytes()


def unpack(bucket: int, data: bytes) -> list[int]:
    """The positions stored in one bucket's packed offsets."""
    offsets = array("H")
    offsets.frombytes(data)
    if not _NATIVE_LITTLE:
        offsets.byteswap()
    base = bucket << BUCKET_BITS
    return [base + o for o in offsets]


def merge(bucket: int, existing: bytes | None, positions: Iterable[int]) -> bytes:
    """The packed bucket holding ``existing`` plus ``positions``."""
    merged = set(unpack(bucket, existing)) if existing else set()
    merged.update(positions)
    base = bucket << BUCKET_BITS
    return pack(sorted(p - base for p in merged))


def split(positions: Iterable[int]) -> dict[int, list[int]]:
    """Group positions by bucket."""
    out: dict[int, list[int]] = {}
    for position in positions:
        out.setdefault(position >> BUCKET_BITS, []).append(position)
    return out
