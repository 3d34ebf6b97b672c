"""Splitting a failing batch until the entries that fail alone are found (no Redis, no SQLite).

``isolate`` is driven with a fake transaction: it fails when the part holds
a poison item (with a data error) and commits otherwise, recording what it
committed. The same rule runs against real Redis and SQLite in
``tests/integration/test_consumer_isolation.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metastream.consumer.identity import DatabaseReplaced
from metastream.consumer.isolate import describe, is_environmental, isolate
from metastream.errors import StoreError


def store_error(cause: sqlite3.Error) -> StoreError:
    try:
        raise StoreError(f"cannot write to the store: {cause}") from cause
    except StoreError as exc:
        return exc


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, set[int]]:
    size = draw(st.integers(1, 300))
    poison = draw(st.sets(st.integers(0, size - 1), max_size=min(size, 12)))
    return size, poison


@given(batches())
def test_exactly_the_poison_is_suspected_and_everything_else_committed_once(
    batch: tuple[int, set[int]],
) -> None:
    size, poison = batch
    committed: list[int] = []

    async def commit(part: Sequence[int]) -> None:
        bad = poison.intersection(part)
        if bad:
            raise TypeError(f"cannot apply entry {min(bad)}")
        committed.extend(part)

    out = asyncio.run(isolate(range(size), commit))
    assert out.error is None
    assert sorted(committed) == [i for i in range(size) if i not in poison]  # each once
    assert out.committed == committed
    assert {i for i, _ in out.suspects} == poison
    for i, exc in out.suspects:
        assert str(exc) == f"cannot apply entry {i}"  # its own exception, not a neighbour's
    if not poison:
        assert out.transactions == 1  # a good batch costs nothing more


@given(batches(), st.integers(1, 40))
def test_an_environmental_failure_stops_the_split_and_blames_no_entry(
    batch: tuple[int, set[int]], fails_at: int
) -> None:
    size, poison = batch
    committed: list[int] = []
    calls = 0

    async def commit(part: Sequence[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == fails_at:
            raise store_error(sqlite3.OperationalError("database or disk is full"))
        if poison.intersection(part):
            raise KeyError("boom")
        committed.extend(part)

    out = asyncio.run(isolate(range(size), commit))
    if out.error is not None:
        assert calls == fails_at  # nothing tried after it
        assert isinstance(out.error.__cause__, sqlite3.OperationalError)
    assert out.committed == committed
    assert len(committed) == len(set(committed))
    assert not poison.intersection(committed)
    assert {i for i, _ in out.suspects} <= poison
    untried = set(range(size)) - set(committed) - {i for i, _ in out.suspects}
    assert not untried or out.error is not None  # nothing is dropped without a reason


@pytest.mark.parametrize(
    ("exc", "environmental"),
    [
        (store_error(sqlite3.OperationalError("database is locked")), True),
        (store_error(sqlite3.OperationalError("disk I/O error")), True),
        (store_error(sqlite3.DatabaseError("file is not a database")), True),
        (store_error(sqlite3.IntegrityError("UNIQUE constraint failed")), False),
        (store_error(sqlite3.DataError("string or blob too big")), False),
        (StoreError("the event log holds an event this version cannot read"), True),
        (OSError(28, "No space left on device"), True),
        (MemoryError(), True),
        (DatabaseReplaced("the database at x was deleted"), True),
        (TypeError("dict keys must be str"), False),
        (KeyError("step"), False),
        (ValueError("bad value"), False),
    ],
)
def test_which_errors_are_the_environments(exc: Exception, environmental: bool) -> None:
    assert is_environmental(exc) is environmental


def test_the_reason_is_the_exception_type_and_message() -> None:
    assert describe(TypeError("metadata 'card': dict keys must be str, got int 1")) == (
        "TypeError: metadata 'card': dict keys must be str, got int 1"
    )
    assert describe(KeyError("x")) == "KeyError: 'x'"
    assert describe(RuntimeError()) == "RuntimeError"
