"""Memory-mapped spool segments (segments.py) through the EventQueue; no Redis needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metastream.config import Settings
from metastream.producer import Producer
from metastream.producer.queue import EventQueue
from metastream.producer.records import FIRST_RECORD, HEADER, read_spool
from metastream.producer.spool import SEGMENT_SUFFIX, SUFFIX, claim_orphans
from metastream.stack.server import free_port


def _queue(directory: Path, segment_bytes: int = 64 * 1024) -> EventQueue:
    return EventQueue(
        1 << 30, lambda: None, lambda: None, segments_dir=directory, segment_bytes=segment_bytes
    )


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def test_every_event_is_in_a_segment_file_when_put_returns(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    bodies = [b"event-%d" % i for i in range(100)]
    for body in bodies:
        q.put(body)

    (segment,) = _segments(tmp_path)  # read back by another descriptor, as a claimer would
    assert read_spool(segment) == bodies
    assert segment.stat().st_size == 64 * 1024  # reserved at its full size
    q.close_segments()


def test_settled_events_are_marked_in_order_and_full_settled_segments_deleted(
    tmp_path: Path,
) -> None:
    q = _queue(tmp_path, segment_bytes=4096)
    bodies = [b"%05d" % i + b"x" * 100 for i in range(200)]  # ~23 KB: several segments
    for body in bodies:
        q.put(body)
    assert len(_segments(tmp_path)) > 3
    first = q.take(50)
    second = q.take(50)
    assert first is not None
    assert second is not None

    q.settle(second[0])  # out of order: nothing can be marked before the first is settled
    assert [b for p in _segments(tmp_path) for b in read_spool(p)] == bodies
    q.settle(first[0])
    assert [b for p in _segments(tmp_path) for b in read_spool(p)] == bodies[100:]

    while (got := q.take(30)) is not None:
        q.settle(got[0])
    (active,) = _segments(tmp_path)  # the sealed ones are gone; the active one stays
    assert read_spool(active) == []
    assert q.close_segments() == []
    assert not list(tmp_path.iterdir())


def test_close_keeps_a_segment_with_unsettled_events_as_a_spool_file(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    bodies = [b"e%d" % i for i in range(10)]
    for body in bodies:
        q.put(body)
    got = q.take(4)
    assert got is not None
    q.settle(got[0])

    in_segments, rest = q.take_leftovers()
    (kept,) = q.close_segments()

    assert (in_segments, rest) == (6, [])
    assert kept.suffix == SUFFIX
    assert read_spool(kept) == bodies[4:]
    written = FIRST_RECORD + sum(HEADER.size + len(b) for b in bodies)
    assert kept.stat().st_size == written  # cut to what was written
    assert not _segments(tmp_path)


def test_a_segment_left_by_a_dead_producer_is_claimed_as_a_spool_file(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    for i in range(20):
        q.put(b"e%d" % i)
    assert claim_orphans(tmp_path) == []  # its producer holds the lock
    q.abandon()  # the descriptors close, as when the process dies

    (orphan,) = claim_orphans(tmp_path)
    bodies, end = orphan.read(1000, 1 << 20)
    assert bodies == [b"e%d" % i for i in range(20)]
    orphan.commit(end)
    assert orphan.done  # the zeroed tail is not corruption
    orphan.remove()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_never_writes_into_the_parents_segment(settings: Settings) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    producer = Producer(settings.with_(linger_ms=600_000), redis_url=url)
    parent = [b"parent-%d" % i for i in range(10)]
    for body in parent:
        producer.publish(body)
    (segment,) = _segments(settings.spool_dir)

    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            for i in range(10):
                producer.publish(b"child-%d" % i)
            mine = producer._queue.segment_paths()
            code = 0 if mine and segment not in mine else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert read_spool(segment) == parent
    producer.close(timeout=0)
