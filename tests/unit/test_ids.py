"""Event ids: UUIDv7 layout, strictly increasing in a process, fresh after fork."""

from __future__ import annotations

import os
import time
import uuid

from metastream.schemas import id_time, new_id


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
