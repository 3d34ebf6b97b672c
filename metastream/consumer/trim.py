"""Trimming the stream, never past an entry some consumer group still needs.

The SQLite log is the system of record; the stream is transport, so acked
entries can go. But other services read the same stream with their own
groups, at their own pace: an entry may be trimmed only once *every* group
has acked it. For each group (``XINFO GROUPS``) the first entry it still
needs is the oldest one in its pending list (``XPENDING`` summary) if it has
any, else the first one after its ``last-delivered-id``; the stream is
trimmed (``XTRIM MINID``, exact) to the smallest of these, less
``retention`` acked entries kept for inspection. A stream without groups is
never trimmed.

Between reading the groups and trimming, groups only move forward (acks,
deliveries), so the bound stays safe. A group created later at ``0`` can
only see what is left; so can ``XGROUP SETID`` back past it.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aredis

from metastream.consumer.entries import entries_of, parse_id

log = logging.getLogger("metastream.consumer")


def _format_id(parts: tuple[int, int]) -> str:
    return f"{parts[0]}-{parts[1]}"


def _after(raw: bytes | str) -> tuple[int, int]:
    """The smallest id greater than ``raw``."""
    ms, seq = parse_id(raw)
    return (ms, seq + 1) if seq < 2**64 - 1 else (ms + 1, 0)


async def oldest_needed(client: aredis.Redis, stream: str) -> str | None:
    """The id before which every group has acked every entry; ``None`` without groups."""
    groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    if not groups:
        return None
    bounds: list[tuple[int, int]] = []
    for group in groups:
        bound = _after(group["last-delivered-id"])
        if int(group["pending"]):
            summary = await client.xpending(stream, group["name"])
            if summary["pending"] and summary["min"] is not None:
                bound = min(bound, parse_id(summary["min"]))
        bounds.append(bound)
    return _format_id(min(bounds))


async def trim_acked(client: aredis.Redis, stream: str, retention: int = 0) -> int:
    """Trim entries every group has acked, keeping the last ``retention`` of them.

    Returns how many entries were removed.
    """
    if not await client.exists(stream):
        return 0
    bound = await oldest_needed(client, stream)
    if bound is None:
        return 0
    if retention:
        kept = entries_of(await client.xrevrange(stream, max=f"({bound}", min="-", count=retention))
        if len(kept) < retention:
            return 0
        bound = kept[-1].id.decode()
    removed = int(await client.xtrim(stream, minid=bound, approximate=False))
    if removed:
        log.info("trimmed %d acked entries from %s (kept from %s)", removed, stream, bound)
    return removed
