"""Event ids: UUIDv7 layout, strictly increasing in a process, fresh after fork."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from metastream.schemas import id_time, ids, new_id


def test_ids_are_uuid7_and_carry_the_time() -> None:
    before = time.time()
    value = uuid.UUID(bytes=new_id())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before - 0.002 <= id_time(value.bytes) <= time.time() + 0.002


def test_ids_strictly_increase_even_within_one_millisecond() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_id()  # make sure the parent has state to inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        os.write(write, b"".join(new_id() for _ in range(100)))
        os._exit(0)
    os.close(write)
    parent = {new_id() for _ in range(100)}
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {data[i : i + 16] for i in range(0, len(data), 16)}
    assert len(child) == 100
    assert not parent & child


def test_a_full_counter_carries_then_borrows_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time_ns()
    monkeypatch.setattr(ids, "_time_ns", lambda: now)  # the clock stands still
    first = new_id()
    ms = now // 1_000_000
    # one short of rand_b's last value: the next id ends rand_b, the one after carries
    monkeypatch.setattr(ids, "_lo", (ids._VARIANT | ids._RAND_B_MASK) - 1)
    at_end_of_rand_b = new_id()
    carried = new_id()
    # rand_a full, rand_b one short: the next id is the last of the millisecond
    monkeypatch.setattr(ids, "_hi", (ms << 16) | ids._VERSION_BITS | 0xFFF)
    monkeypatch.setattr(ids, "_lo", (ids._VARIANT | ids._RAND_B_MASK) - 1)
    full = new_id()
    borrowed = new_id()
    made = [first, at_end_of_rand_b, carried, full, borrowed]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    for value in made:
        parsed = uuid.UUID(bytes=value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert at_end_of_rand_b[8:] == (ids._VARIANT | ids._RAND_B_MASK).to_bytes(8, "big")
    assert carried[6:8] == (int.from_bytes(at_end_of_rand_b[6:8], "big") + 1).to_bytes(2, "big")
    assert int.from_bytes(carried[:6], "big") == ms
    assert int.from_bytes(full[:6], "big") == ms
    assert int.from_bytes(borrowed[:6], "big") == ms + 1
    assert new_id() > borrowed  # still counting in the borrowed millisecond
