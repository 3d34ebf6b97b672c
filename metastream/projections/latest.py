"""The latest-value view, the history index, and references that wait or fail.

``latest`` holds, per (entity, key), the value with the greatest
``event_id``. When every value ever logged for a key is a dict, the dicts
are shallow-merged in ``event_id`` order, later keys winning (a "card" grows
with each log). Both rules depend only on the *set* of events, not on the
order they arrive in: an event that arrives late (a spool replayed hours
later) is merged in its place by recomputing the key from its history.

``history`` indexes, per entity, the log positions of the events applied to
it (see ``positions``); it serves key histories and "as of" queries.

``latest_maps`` holds, per entity, all of its ``latest`` values as one
msgpack map (keys sorted, each value's bytes as in ``latest``): reading a
run of 100 steps x 50 keys is then 101 rows and 101 decodes in C instead of
5,000 rows decoded one by one in Python. It is rewritten, for each entity a
batch changes, from the rows ``_write_latest`` reads anyway.

A ``MetadataLogged`` event whose reference does not resolve yet is kept in
``pending`` and applied when its entity is registered; one that can never
resolve is recorded in ``rejections`` with the reason. Nothing is dropped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Final, TypeAlias

import msgspec

from metastream.eventlog import sqlite as logdb
from metastream.eventlog.base import LogSource, store_errors
from metastream.eventlog.sqlite import SqliteLogSource
from metastream.projections import positions as pos
from metastream.projections.base import Projection, Records
from metastream.projections.registry import registered
from metastream.projections.resolve import Rejected, Resolved, Waiting, resolve, run_sync, wait_key
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    ModelVersionRegistered,
    RawMetadataLogged,
    RunStarted,
    StepStarted,
    StoredEvent,
    decode_stored,
    decode_value,
    encode_value,
    prepare_value,
)

LATEST_DDL: Final = """
CREATE TABLE IF NOT EXISTS latest (
    entity    BLOB NOT NULL,
    key       TEXT NOT NULL,
    event_id  BLOB NOT NULL,
    value     BLOB NOT NULL,
    all_dicts INTEGER NOT NULL,
    component TEXT,
    PRIMARY KEY (entity, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest_maps (
    entity   BLOB PRIMARY KEY,
    metadata BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    entity    BLOB NOT NULL,
    bucket    INTEGER NOT NULL,
    positions BLOB NOT NULL,
    PRIMARY KEY (entity, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    position INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL,
    wait     TEXT NOT NULL,
    target   TEXT NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_wait ON pending(wait);
CREATE TABLE IF NOT EXISTS rejections (
    position   INTEGER PRIMARY KEY,
    event_id   BLOB NOT NULL UNIQUE,
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    candidates TEXT NOT NULL
);
"""

_REGISTERING: Final = (RunStarted, StepStarted, ArtifactVersionRegistered, ModelVersionRegistered)
_in = logdb.placeholders

# Plain tuples on the hot path: a NamedTuple costs a Python-level __new__ per value.
Value: TypeAlias = tuple[bytes, bytes, str | None]
"""``(event_id, raw value, component)``: one value logged for a key."""
Row: TypeAlias = tuple[bytes, bytes, bool, str | None]
"""``(event_id, value, all_dicts, component)``: a key's row in ``latest``."""
ByKey: TypeAlias = dict[str, list[Value]]


def _is_map(raw: bytes) -> bool:
    first = raw[0]
    return 0x80 <= first <= 0x8F or first == 0xDE or first == 0xDF


def merge_dicts(encoded: Sequence[bytes]) -> bytes:
    """Shallow-merge encoded dicts in order, later keys winning; encode the result."""
    merged: dict[str, Any] = {}
    for data in encoded:
        merged.update(decode_value(data))
    return encode_value(prepare_value(merged))


def combine(values: Sequence[Value]) -> Row:
    """A key's row from *all* its values, in any order."""
    ordered = sorted(values)
    event_id, raw, component = ordered[-1]
    all_dicts = all(_is_map(v[1]) for v in ordered)
    if all_dicts and len(ordered) > 1:
        return (event_id, merge_dicts([v[1] for v in ordered]), True, component)
    return (event_id, raw, all_dicts, component)


def advance(current: Row | None, new: list[Value]) -> Row | None:
    """A key's next row from its current row and some more values.

    Returns ``current`` itself when nothing changes, and ``None`` when the key
    must be recomputed from its whole history (a late value among merged
    dicts). Sorts ``new`` in place.
    """
    if len(new) > 1:
        new.sort()
    event_id, raw, component = new[-1]
    if current is None:
        if len(new) == 1 or not _is_map(raw):
            return (event_id, raw, len(new) == 1 and _is_map(raw), component)
        return combine(new)
    if new[0][0] > current[0]:  # in order: the usual case
        if current[2] and all(_is_map(v[1]) for v in new):
            return (event_id, merge_dicts([current[1], *(v[1] for v in new)]), True, component)
        return (event_id, raw, False, component)
    if not current[2]:  # the greatest event_id wins, and the current value is raw
        return (event_id, raw, False, component) if event_id > current[0] else current
    return None


def wake_keys(event: StoredEvent) -> list[str]:
    """The ``pending.wait`` keys that an entity's registration may satisfy."""
    if isinstance(event, RunStarted):
        return ["id:" + event.run_id.hex, "run", "step"]
    if isinstance(event, StepStarted):
        return ["id:" + event.step_id.hex, "step"]
    if isinstance(event, ArtifactVersionRegistered):
        return ["id:" + event.artifact_version_id.hex, "artifact:" + event.name]
    if isinstance(event, ModelVersionRegistered):
        return ["id:" + event.model_version_id.hex, "model:" + event.name]
    return []


class _Batch:
    """Values and positions to write, by entity."""

    def __init__(self) -> None:
        self.values: dict[bytes, ByKey] = {}
        self.positions: dict[bytes, list[int]] = {}

    def add(self, entity: bytes, position: int, event: RawMetadataLogged) -> None:
        by_key = self.values.get(entity)
        if by_key is None:
            by_key = self.values[entity] = {}
            self.positions[entity] = [position]
        else:
            self.positions[entity].append(position)
        _add_values(by_key, event)


def _add_values(by_key: ByKey, event: RawMetadataLogged) -> None:
    component = event.component
    event_id = event.event_id
    for key, raw in event.metadata.items():
        values = by_key.get(key)
        if values is None:
            by_key[key] = [(event_id, bytes(raw), component)]
        else:
            values.append((event_id, bytes(raw), component))


class LatestProjection(Projection):
    name = "latest"
    version = 2  # 2: latest_maps
    ddl = LATEST_DDL
    tables = ("latest", "latest_maps", "history", "pending", "rejections")

    def __init__(self, source: LogSource | None = None) -> None:
        self.source = None if source is None else store_errors(source)
        """Where earlier events are read from the log; ``None``: the SQLite log on the
        connection ``apply`` is given (the ``Projector`` hands it its own source)."""
        # id (as int: UUID's own __hash__ is slow Python) -> (kind, registration
        # position, id bytes). Immutable facts: safe to keep across transactions,
        # rebuilds, and other processes writing the same file.
        self._registered: dict[int, tuple[str, int, bytes]] = {}

    def read_log_from(self, source: LogSource) -> None:
        if self.source is None:  # one given when it was made wins
            self.source = store_errors(source)

    def forget(self) -> None:
        self._registered.clear()

    def _log(self, conn: sqlite3.Connection) -> LogSource:
        return self.source if self.source is not None else SqliteLogSource(conn)

    def apply(self, conn: sqlite3.Connection, records: Records) -> None:
        has_pending = conn.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None
        batch = self._by_id(conn, records, has_pending)
        if batch is None:
            batch = self._in_order(conn, records, has_pending)
        if batch.positions:
            self._write_history(conn, batch.positions)
        if batch.values:
            self._write_latest(conn, self._log(conn), batch.values)

    def _by_id(
        self, conn: sqlite3.Connection, records: Records, has_pending: bool
    ) -> _Batch | None:
        """The fast path: every reference is by id, to an entity registered before it.

        Groups values by target first and checks each target once. Returns
        ``None`` when the batch needs the event-by-event path.
        """
        # target id -> (reference, first position, values by key, positions)
        targets: dict[int, tuple[ById, int, ByKey, list[int]]] = {}
        for position, event in records:
            if type(event) is RawMetadataLogged:
                target = event.target
                if type(target) is not ById:
                    return None
                target_id = target.id.int
                found = targets.get(target_id)
                if found is None:
                    by_key: ByKey = {}
                    targets[target_id] = (target, position, by_key, [position])
                else:
                    by_key = found[2]
                    found[3].append(position)
                event_id = event.event_id  # _add_values, inlined: this loop is the hot path
                component = event.component
                for key, raw in event.metadata.items():
                    values = by_key.get(key)
                    if values is None:
                        by_key[key] = [(event_id, bytes(raw), component)]
                    else:
                        values.append((event_id, bytes(raw), component))
            elif has_pending and isinstance(event, _REGISTERING):
                return None
        self._load_registrations(conn, [t[0] for t in targets.values()])
        registered = self._registered
        batch = _Batch()
        for target_id, (target, first, by_key, positions) in targets.items():
            known = registered.get(target_id)
            if known is None or known[1] >= first or known[0] != target.kind:
                return None
            batch.values[known[2]] = by_key
            batch.positions[known[2]] = positions
        return batch

    def _in_order(self, conn: sqlite3.Connection, records: Records, has_pending: bool) -> _Batch:
        """Resolve event by event, in log order: references that wait, fail or wake."""
        batch = _Batch()
        registered = self._registered
        for position, event in records:
            if type(event) is RawMetadataLogged:
                target = event.target
                if type(target) is ById:
                    known = registered.get(target.id.int)
                    if known is not None and known[1] < position and known[0] == target.kind:
                        batch.add(known[2], position, event)
                        continue
                entity = self._resolve(conn, position, event)
                if entity is not None:
                    batch.add(entity, position, event)
                else:
                    has_pending = True
            elif has_pending and isinstance(event, _REGISTERING):
                self._wake(conn, batch, event, position)
        return batch

    def _load_registrations(self, conn: sqlite3.Connection, targets: Sequence[ById]) -> None:
        known = self._registered
        missing = [t.id.bytes for t in targets if t.id.int not in known]
        for entity_id, kind, position in registered(conn, missing):
            known[int.from_bytes(entity_id)] = (kind, position, entity_id)

    def _resolve(
        self, conn: sqlite3.Connection, position: int, event: RawMetadataLogged
    ) -> bytes | None:
        result = run_sync(resolve(event.target, position), conn)
        if isinstance(result, Resolved):
            return result.entity_id
        self._set_aside(conn, position, event, result)
        return None

    @staticmethod
    def _set_aside(
        conn: sqlite3.Connection,
        position: int,
        event: RawMetadataLogged,
        result: Waiting | Rejected,
    ) -> None:
        target = event.target
        if isinstance(result, Waiting):
            conn.execute(
                "INSERT OR REPLACE INTO pending(position, event_id, wait, target, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                (position, event.event_id, wait_key(target), target.describe(), result.reason),
            )
            return
        conn.execute("DELETE FROM pending WHERE position=?", (position,))
        conn.execute(
            "INSERT OR REPLACE INTO rejections(position, event_id, target, reason, candidates) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                position,
                event.event_id,
                target.describe(),
                result.reason,
                json.dumps(result.candidates),
            ),
        )

    def _wake(
        self, conn: sqlite3.Connection, batch: _Batch, registration: StoredEvent, position: int
    ) -> None:
        """Retry the references waiting for what ``registration`` registers."""
        keys = wake_keys(registration)
        waiting = [
            row[0]
            for row in conn.execute(
                f"SELECT position FROM pending WHERE wait IN ({_in(len(keys))}) AND position < ?",
                (*keys, position),
            )
        ]
        for record in self._log(conn).read_at(waiting):
            event = decode_stored(record.body)
            assert isinstance(event, RawMetadataLogged)
            result = run_sync(resolve(event.target, position + 1), conn)
            if isinstance(result, Resolved):
                conn.execute("DELETE FROM pending WHERE position=?", (record.position,))
                batch.add(result.entity_id, record.position, event)
            elif isinstance(result, Rejected):
                self._set_aside(conn, record.position, event, result)

    @staticmethod
    def _write_history(conn: sqlite3.Connection, by_entity: dict[bytes, list[int]]) -> None:
        existing: dict[tuple[bytes, int], bytes] = {}
        entities = list(by_entity)
        for chunk in logdb.chunks(entities):
            lowest = min(min(by_entity[e]) for e in chunk) >> pos.BUCKET_BITS
            for entity, bucket, packed in conn.execute(
                "SELECT entity, bucket, positions FROM history "
                f"WHERE entity IN ({_in(len(chunk))}) AND bucket >= ?",
                (*chunk, lowest),
            ):
                existing[(entity, bucket)] = packed
        conn.executemany(
            "INSERT OR REPLACE INTO history(entity, bucket, positions) VALUES (?, ?, ?)",
            [
                (entity, bucket, pos.merge(bucket, existing.get((entity, bucket)), in_bucket))
                for entity, positions in by_entity.items()
                for bucket, in_bucket in pos.split(positions).items()
            ],
        )

    @staticmethod
    def _write_latest(
        conn: sqlite3.Connection, source: LogSource, values: dict[bytes, ByKey]
    ) -> None:
        entities = list(values)
        current: dict[bytes, dict[str, Row]] = {}
        for chunk in logdb.chunks(entities):
            for entity, key, event_id, value, all_dicts, component in conn.execute(
                "SELECT entity, key, event_id, value, all_dicts, component FROM latest "
                f"WHERE entity IN ({_in(len(chunk))})",
                chunk,
            ):
                current.setdefault(entity, {})[key] = (event_id, value, bool(all_dicts), component)
        out: list[tuple[Any, ...]] = []
        changed: dict[bytes, dict[str, bytes]] = {}
        no_rows: dict[str, Row] = {}
        for entity, by_key in values.items():
            rows = current.get(entity, no_rows)
            for key, new in by_key.items():
                row = rows.get(key)
                next_row = advance(row, new)
                if next_row is None:
                    next_row = combine(key_values(conn, entity, key, source))
                if next_row is not row:
                    out.append((entity, key, *next_row))
                    changed.setdefault(entity, {})[key] = next_row[1]
        conn.executemany(
            "INSERT OR REPLACE INTO latest(entity, key, event_id, value, all_dicts, component) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            out,
        )
        maps = []
        for entity, new_values in changed.items():
            merged = {key: row[1] for key, row in current.get(entity, no_rows).items()}
            merged.update(new_values)
            maps.append((entity, encode_map(merged)))
        conn.executemany("INSERT OR REPLACE INTO latest_maps(entity, metadata) VALUES (?, ?)", maps)


_MAP_ENCODER: Final = msgspec.msgpack.Encoder()


def encode_map(values: dict[str, bytes]) -> bytes:
    """Encoded values as one msgpack map, keys sorted, each value's bytes kept as they are."""
    return _MAP_ENCODER.encode({key: msgspec.Raw(values[key]) for key in sorted(values)})


def latest_maps(conn: sqlite3.Connection, entities: Sequence[bytes]) -> dict[bytes, Any]:
    """``{entity: {key: latest value}}`` (decoded, keys sorted); entities without values omitted."""
    out: dict[bytes, Any] = {}
    for chunk in logdb.chunks(entities):
        for entity, data in conn.execute(
            f"SELECT entity, metadata FROM latest_maps WHERE entity IN ({_in(len(chunk))})",
            chunk,
        ):
            out[bytes(entity)] = decode_value(data)
    return out


def entity_positions(conn: sqlite3.Connection, entity: bytes) -> list[int]:
    """The log positions of every event applied to ``entity``, ascending."""
    out: list[int] = []
    for bucket, packed in conn.execute(
        "SELECT bucket, positions FROM history WHERE entity=? ORDER BY bucket", (entity,)
    ):
        out.extend(pos.unpack(bucket, packed))
    return out


def key_values(
    conn: sqlite3.Connection, entity: bytes, key: str, source: LogSource | None = None
) -> list[Value]:
    """Every value ever applied for ``key`` of ``entity``, from the log (``source``, or the
    SQLite log on ``conn``); the positions come from the history view on ``conn``."""
    out = []
    log = source if source is not None else SqliteLogSource(conn)
    for record in log.read_at(entity_positions(conn, entity)):
        event = decode_stored(record.body)
        if isinstance(event, RawMetadataLogged) and key in event.metadata:
            out.append((event.event_id, bytes(event.metadata[key]), event.component))
    return out


# -- reads: what readers ask of this view -----------------------------------------


def events_of(conn: sqlite3.Connection, entity: bytes) -> Iterator[tuple[int, StoredEvent]]:
    """``(position, event)`` of every event applied to ``entity``, in log order."""
    for record in logdb.read_at(conn, entity_positions(conn, entity)):
        yield record.position, decode_stored(record.body)


def values_as_of(
    conn: sqlite3.Connection,
    entity: bytes,
    *,
    position: int | None = None,
    time: float | None = None,
) -> dict[str, bytes]:
    """``entity``'s latest values (encoded, keys sorted) as of a log position and/or a time.

    The same rule as the view itself (``combine``), over the events logged at
    or before ``position`` and at or before ``time`` (Unix seconds, to the
    microsecond: an event logged in the same microsecond counts).
    """
    values: dict[str, list[Value]] = {}
    for at, event in events_of(conn, entity):
        if not isinstance(event, RawMetadataLogged):
            continue
        if position is not None and at > position:
            continue
        if time is not None and round(event.ts, 6) > time:  # datetimes hold microseconds
            continue
        for key, raw in event.metadata.items():
            values.setdefault(key, []).append((event.event_id, bytes(raw), event.component))
    return {key: combine(found)[1] for key, found in sorted(values.items())}


SetAsideRow = tuple[int, bytes, str, str, list[str]]
"""``(position, event_id, target, reason, candidates)``."""


def set_aside(
    conn: sqlite3.Connection, table: str, event_ids: Sequence[bytes] | None = None
) -> list[SetAsideRow]:
    """The references of ``table`` (``rejections`` or ``pending``), in log order.

    With ``event_ids``, only those among them.
    """
    candidates = {"rejections": "candidates", "pending": "'[]'"}[table]
    chunks: list[Sequence[bytes] | None] = (
        list(logdb.chunks(event_ids)) if event_ids is not None else [None]
    )
    out: list[SetAsideRow] = []
    for chunk in chunks:
        where = "" if chunk is None else f" WHERE event_id IN ({_in(len(chunk))})"
        out.extend(
            (p, bytes(e), t, r, json.loads(c))
            for p, e, t, r, c in conn.execute(
                f"SELECT position, event_id, target, reason, {candidates} FROM {table}"
                f"{where} ORDER BY position",
                chunk or (),
            )
        )
    if len(chunks) > 1:  # each chunk is in log order, not the chunks one after another
        out.sort(key=lambda row: row[0])
    return out


def short_values(
    conn: sqlite3.Connection, entities: Sequence[bytes], max_bytes: int
) -> Iterator[tuple[bytes, str, bytes]]:
    """``(entity, key, encoded value)`` of the latest values of at most ``max_bytes``."""
    for chunk in logdb.chunks(entities):
        for entity, key, value in conn.execute(
            "SELECT entity, key, value FROM latest WHERE length(value) <= ? AND entity IN "
            f"({_in(len(chunk))})",
            [max_bytes, *chunk],
        ):
            yield bytes(entity), key, value
