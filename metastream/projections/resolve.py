"""Resolving a reference to the entity it names, as of a log position.

Written sans-I/O: a resolver is a generator that yields ``(sql, params)``
(built by ``registry.py``, which owns the ``entities`` table) and
is sent back the rows, so the asynchronous projector and the synchronous
query side run the same logic (``run_sync`` / ``run_async``).

Only entities registered *before* the referencing event's log position are
candidates. That makes the answer a function of the log alone: a projection
that catches up later, with the registry already complete, resolves every
reference exactly as one that followed the log from the start.

A run reference (``run_id_name_or_prefix``) is matched as in the reference:
a UUID is an id; otherwise an exact name; otherwise a unique id prefix or
name prefix. Several matches are ambiguous and list the candidates.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, NamedTuple, TypeAlias

from metastream.projections import registry
from metastream.schemas import (
    ArtifactByName,
    ById,
    ModelByName,
    RunByName,
    StepByName,
    Target,
    parse_uuid,
)

Query: TypeAlias = tuple[str, tuple[Any, ...]]
Rows: TypeAlias = list[tuple[Any, ...]]
Resolver: TypeAlias = Generator[Query, Rows, "Resolution"]

NOW: Final = 1 << 62
"""A position after every event: resolve against the whole registry."""

_HEX_PREFIX: Final = re.compile(r"^[0-9a-fA-F-]+$")


class Resolved(NamedTuple):
    entity_id: bytes


class Waiting(NamedTuple):
    """Nothing matches yet; the entity's own event may still arrive."""

    reason: str


class Rejected(NamedTuple):
    """Can never resolve (ambiguous, or an id of another kind of entity)."""

    reason: str
    candidates: list[str]


Resolution: TypeAlias = Resolved | Waiting | Rejected


def resolve(target: Target, before: int = NOW) -> Resolver:
    """Resolve ``target`` against entities registered at positions < ``before``."""
    if isinstance(target, ById):
        return (yield from _by_id(target.kind, target.id.bytes, before))
    if isinstance(target, RunByName):
        return (yield from _run(target.name_id_or_prefix, before))
    if isinstance(target, StepByName):
        run = yield from _run(target.run, before)
        if not isinstance(run, Resolved):
            return run
        rows = yield registry.step_query(run.entity_id, target.step_name, before)
        if not rows:
            return Waiting(f"no step {target.step_name!r} in pipeline run {target.run!r}")
        return Resolved(bytes(rows[0][0]))
    if isinstance(target, ArtifactByName | ModelByName):
        kind = "artifact_version" if isinstance(target, ArtifactByName) else "model_version"
        rows = yield registry.version_query(kind, target.name, target.version, before)
        if not rows:
            return Waiting(f"no {target.describe()}")
        if len(rows) > 1:
            ids = [str(uuid.UUID(bytes=bytes(r[0]))) for r in rows]
            return Rejected(f"{target.describe()} names {len(rows)} entities", ids)
        return Resolved(bytes(rows[0][0]))
    raise TypeError(f"not a reference: {target!r}")


def _by_id(kind: str, entity_id: bytes, before: int) -> Resolver:
    rows = yield registry.kind_query(entity_id)
    if not rows or rows[0][1] is None or rows[0][1] >= before:
        return Waiting(f"no {kind.replace('_', ' ')} with id {uuid.UUID(bytes=entity_id)}")
    if rows[0][0] != kind:
        return Rejected(
            f"id {uuid.UUID(bytes=entity_id)} is a {rows[0][0].replace('_', ' ')}, "
            f"not a {kind.replace('_', ' ')}",
            [],
        )
    return Resolved(entity_id)


def _run(ref: str, before: int) -> Resolver:
    as_id = parse_uuid(ref)
    if as_id is not None:
        return (yield from _by_id("pipeline_run", as_id.bytes, before))
    hex_prefix = ref.replace("-", "").lower() if _HEX_PREFIX.match(ref) else None
    rows = yield registry.run_prefix_query(ref, hex_prefix, before)
    exact = [r for r in rows if r[1] == ref]
    matches = exact or rows
    if not matches:
        return Waiting(f"no pipeline run with name, id or prefix {ref!r}")
    if len(matches) > 1:
        candidates = sorted(f"{r[1]} ({uuid.UUID(bytes=bytes(r[0]))})" for r in matches)
        what = "name" if exact else "prefix"
        return Rejected(
            f"{what} {ref!r} matches {len(matches)} pipeline runs: " + ", ".join(candidates),
            candidates,
        )
    return Resolved(bytes(matches[0][0]))


def run_sync(resolver: Resolver, db: sqlite3.Connection) -> Resolution:
    """Drive ``resolver`` on a synchronous sqlite3 connection."""
    try:
        query = next(resolver)
        while True:
            query = resolver.send(db.execute(*query).fetchall())
    except StopIteration as done:
        result: Resolution = done.value
        return result


async def run_async(
    resolver: Resolver, fetch: Callable[[str, tuple[Any, ...]], Awaitable[Rows]]
) -> Resolution:
    """Drive ``resolver`` with an async ``fetch(sql, params) -> rows``."""
    try:
        query = next(resolver)
        while True:
            query = resolver.send(await fetch(*query))
    except StopIteration as done:
        result: Resolution = done.value
        return result


def wait_key(target: Target) -> str:
    """Which registrations can make a waiting reference resolvable."""
    if isinstance(target, ById):
        return "id:" + target.id.hex
    if isinstance(target, RunByName):
        as_id = parse_uuid(target.name_id_or_prefix)
        return "id:" + as_id.hex if as_id else "run"
    if isinstance(target, StepByName):
        return "step"
    if isinstance(target, ArtifactByName):
        return "artifact:" + target.name
    return "model:" + target.name
