"""The dead-letter stream: entries the consumer gave up on, with why, and their way back.

An entry is dead-lettered when it cannot be decoded, or when it has been
delivered more than ``max_deliveries`` times (its batch kept failing). The
dead letter is a stream entry of its own (``metastream:dead`` by default)
holding the reason, where the entry came from (stream, entry id, group,
consumer), how often it was delivered, and the original bytes, so nothing is
lost: ``metastream dead-letters retry`` puts the bytes back on the stream
they came from once the cause is fixed (a newer consumer that knows the
event type, a repaired database).

Writing happens in the consumer (async, inside the same MULTI as the XACK,
so an entry is never both acked and missing from the dead letters); listing
and retrying happen in the CLI (sync).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import msgspec
import redis

from metastream.consumer.entries import DATA_KEY, Entry, entries_of
from metastream.errors import ReferenceNotFound

PAGE: Final = 500
"""Dead letters read and retried per round trip."""

_FIELDS_ENCODER: Final = msgspec.msgpack.Encoder()
_FIELDS_DECODER: Final = msgspec.msgpack.Decoder(dict[bytes, bytes])


def dead_letter_fields(
    entry: Entry,
    reason: str,
    *,
    stream: str,
    group: str,
    consumer: str,
    deliveries: int | None = None,
) -> dict[str, bytes | str]:
    """The fields of the dead letter for ``entry``.

    The original event bytes go in ``data``; an entry without the
    ``__data__`` field (not written by metastream) keeps all its fields,
    msgpack-encoded, in ``fields``, so that a retry restores it exactly.
    """
    out: dict[str, bytes | str] = {
        "reason": reason,
        "stream": stream,
        "id": entry.id,
        "group": group,
        "consumer": consumer,
    }
    if deliveries is not None:
        out["deliveries"] = str(deliveries)
    fields = entry.field_map()
    if set(fields) == {DATA_KEY}:
        out["data"] = fields[DATA_KEY]
    else:
        out["fields"] = _FIELDS_ENCODER.encode(fields)
    return out


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered entry, as read back from the dead-letter stream."""

    id: str
    """The dead letter's own entry id (what ``retry`` takes)."""
    reason: str
    stream: str
    entry_id: str
    group: str
    consumer: str
    deliveries: int | None
    original: dict[bytes, bytes]
    """The original entry's fields, ready to be XADDed again."""

    @property
    def dead_lettered_at(self) -> float:
        """When it was dead-lettered (seconds since the epoch), from its entry id."""
        return int(self.id.split("-", 1)[0]) / 1000

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.dead_lettered_at)


def parse_dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(key: bytes) -> str:
        return fields.get(key, b"").decode(errors="replace")

    if b"data" in fields:
        original = {DATA_KEY: fields[b"data"]}
    else:
        try:
            original = _FIELDS_DECODER.decode(fields.get(b"fields", b"\x80"))
        except msgspec.DecodeError:
            original = {}
    raw_deliveries = fields.get(b"deliveries")
    return DeadLetter(
        id=entry_id.decode(),
        reason=text(b"reason"),
        stream=text(b"stream"),
        entry_id=text(b"id"),
        group=text(b"group"),
        consumer=text(b"consumer"),
        deliveries=int(raw_deliveries) if raw_deliveries else None,
        original=original,
    )


def iter_dead_letters(client: redis.Redis, dead_stream: str) -> Iterator[DeadLetter]:
    """Every dead letter, oldest first, read a page at a time."""
    start = "-"
    while True:
        page = entries_of(client.xrange(dead_stream, min=start, max="+", count=PAGE))
        for entry in page:
            yield parse_dead_letter(entry.id, entry.field_map())
        if len(page) < PAGE:
            return
        start = "(" + page[-1].id.decode()


def count_dead_letters(client: redis.Redis, dead_stream: str) -> int:
    return int(client.xlen(dead_stream))


def retry_dead_letters(
    client: redis.Redis, dead_stream: str, ids: Iterable[str] | None = None
) -> list[tuple[DeadLetter, str]]:
    """Put dead letters back on the stream they came from; ``None`` retries all of them.

    Each one is re-added and deleted from the dead-letter stream in one MULTI,
    so a retry interrupted half-way neither loses an entry nor doubles it.
    Returns ``(dead letter, new entry id)`` for each. Unknown ids raise
    before anything is retried.
    """
    if ids is None:
        chosen = list(iter_dead_letters(client, dead_stream))
    else:
        wanted = list(dict.fromkeys(ids))
        chosen, missing = [], []
        for dead_id in wanted:
            found = entries_of(client.xrange(dead_stream, min=dead_id, max=dead_id))
            if found:
                chosen.append(parse_dead_letter(found[0].id, found[0].field_map()))
            else:
                missing.append(dead_id)
        if missing:
            raise ReferenceNotFound(
                f"no dead letter with id {', '.join(missing)} in {dead_stream} "
                "(see `metastream dead-letters list`)"
            )
    done: list[tuple[DeadLetter, str]] = []
    for start in range(0, len(chosen), PAGE):
        page = [d for d in chosen[start : start + PAGE] if d.original]
        if not page:
            continue
        with client.pipeline(transaction=True) as pipe:
            for dead in page:
                pipe.xadd(dead.stream, dead.original)  # type: ignore[arg-type]
                pipe.xdel(dead_stream, dead.id)
            replies = pipe.execute()
        done.extend(
            (dead, bytes(new_id).decode()) for dead, new_id in zip(page, replies[::2], strict=True)
        )
    return done
