"""The consumer group and this process's place in it.

* The group is created at ``0`` (``XGROUP CREATE ... 0 MKSTREAM``): FastStream
  would create it at ``$``, and every entry published before the first
  consumer started would never be read. ``BUSYGROUP`` (it exists) is fine.
* Each process is its own consumer, named ``host-pid``: replicas, ``faststream
  run --workers N`` (spawned processes) and restarts never share a name, so
  one never acknowledges or claims for another by accident.
* Consumers that are gone keep their names in the group forever; once they
  hold nothing pending (the reclaim loop empties them) and have been idle for
  a long time, :func:`forget_idle_consumers` removes them. Removing a live
  consumer with nothing pending would be harmless too: Redis re-creates it
  on its next read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from metastream.consumer.entries import Entry
from metastream.processes import consumer_name as consumer_name  # re-exported

log = logging.getLogger("metastream.consumer")

FORGET_IDLE_MS: Final = 24 * 3600 * 1000
"""A consumer with nothing pending and idle for a day is forgotten."""


# XGROUP DELCONSUMER drops the consumer's pending entries unacknowledged, so
# "nothing pending" must be checked in the same atomic step as the delete.
_DELETE_IF_IDLE: Final = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


async def ensure_group(client: aredis.Redis, stream: str, group: str, at: str = "0") -> bool:
    """Create ``group`` on ``stream`` at id ``at`` (and the stream); whether it was new."""
    try:
        await client.xgroup_create(stream, group, id=at, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    log.info("created consumer group %s on %s at %s", group, stream, at)
    return True


async def group_info(client: aredis.Redis, stream: str, group: str) -> dict[str, Any] | None:
    """``XINFO GROUPS`` of ``group``, ``None`` if the group (or the stream) does not exist."""
    try:
        groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    for info in groups:
        if info["name"] in (group, group.encode()):
            return info
    return None


async def group_exists(client: aredis.Redis, stream: str, group: str) -> bool:
    """Whether ``stream`` exists and has ``group`` (``False`` after Redis lost its data)."""
    return await group_info(client, stream, group) is not None


async def forget_idle_consumers(
    client: aredis.Redis, stream: str, group: str, *, keep: str, idle_ms: int = FORGET_IDLE_MS
) -> list[str]:
    """Delete consumers of ``group`` with nothing pending, idle over ``idle_ms`` (not ``keep``)."""
    consumers: list[dict[str, Any]] = await client.xinfo_consumers(stream, group)
    gone = []
    for consumer in consumers:
        name = consumer["name"].decode()
        if name == keep or int(consumer["pending"]) or int(consumer["idle"]) < idle_ms:
            continue
        if int(await client.eval(_DELETE_IF_IDLE, 1, stream, group, name)) >= 0:
            gone.append(name)
    if gone:
        log.info("forgot %d idle consumers of group %s: %s", len(gone), group, ", ".join(gone))
    return gone


PENDING_PAGE: Final = 1000
"""Rows per XPENDING call when looking up delivery counts."""


async def delivery_counts(
    client: aredis.Redis, stream: str, group: str, consumer: str, entries: Sequence[Entry]
) -> dict[bytes, int]:
    """How often each of ``entries`` (just claimed by ``consumer``) was delivered.

    Pages through ``consumer``'s pending entries between the first and the last
    of them (others it holds may lie in between) until every one is found.
    """
    wanted = {e.id for e in entries}
    counts: dict[bytes, int] = {}
    start: bytes | str = entries[0].id
    end = entries[-1].id
    while len(counts) < len(wanted):
        rows: list[Any] = await client.xpending_range(
            stream, group, min=start, max=end, count=PENDING_PAGE, consumername=consumer
        )
        for row in rows:
            entry_id = bytes(row["message_id"])
            if entry_id in wanted:
                counts[entry_id] = int(row["times_delivered"])
        if len(rows) < PENDING_PAGE:
            break
        start = b"(" + bytes(rows[-1]["message_id"])
    return counts
