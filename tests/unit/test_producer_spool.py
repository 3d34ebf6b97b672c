"""The spool file format (records.py) and spool file ownership (spool.py); no Redis needed."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import pytest

from metastream.producer.records import (
    FILE_HEADER,
    FIRST_RECORD,
    HEADER,
    MAGIC,
    encode_records,
    read_spool,
)
from metastream.producer.spool import (
    CORRUPT_SUFFIX,
    SUFFIX,
    SpoolWriter,
    claim_orphans,
    has_spool_files,
)

BODIES = [b"first", b"\x00" * 300, b"third \r\n $5 %d", bytes(range(256)) * 4]


def _only_file(directory: Path) -> Path:
    (path,) = directory.glob(f"*{SUFFIX}")
    return path


def _write(directory: Path, *batches: list[bytes]) -> Path:
    writer = SpoolWriter(directory)
    for batch in batches:
        writer.append(batch)
    path = writer.path
    assert path is not None
    writer.close()
    return path


def test_round_trip_over_several_appends(tmp_path: Path) -> None:
    path = _write(tmp_path, BODIES[:2], BODIES[2:], [b"last"])

    assert path.read_bytes().startswith(MAGIC)
    assert read_spool(path) == [*BODIES, b"last"]


def test_record_layout_is_length_crc_body(tmp_path: Path) -> None:
    import zlib

    path = _write(tmp_path, [b"abc"])

    header = FILE_HEADER.pack(MAGIC, FIRST_RECORD)
    assert path.read_bytes() == header + HEADER.pack(3, zlib.crc32(b"abc")) + b"abc"


def test_files_are_private_and_named_by_creation_time(tmp_path: Path) -> None:
    first = _write(tmp_path, [b"a"])
    second = _write(tmp_path, [b"b"])

    assert sorted([second, first]) == [first, second]
    assert first.stat().st_mode & 0o777 == 0o600
    assert str(os.getpid()) in first.name


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(HEADER.pack(100, 12345) + b"x" * 40, id="partial-body"),
        pytest.param(b"\x00\x00\x01", id="partial-header"),
    ],
)
def test_torn_tail_is_skipped_with_a_warning(
    tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, BODIES)
    with path.open("ab") as f:
        f.write(tail)

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        assert read_spool(path) == BODIES

    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "incomplete record" in record.getMessage()
    assert path.name in record.getMessage()


def test_zero_filled_tail_is_the_end_of_the_written_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a segment's reserved tail holds (and what a power loss can leave on some file
    # systems): an all-zero record header is "nothing more", not corruption.
    path = _write(tmp_path, BODIES)
    with path.open("ab") as f:
        f.write(b"\x00" * 4096)

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        assert read_spool(path) == BODIES

    assert caplog.records == []


def test_a_corrupted_record_before_a_zeroed_tail_is_skipped_without_scanning_the_zeros(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, BODIES)
    with path.open("ab") as f:
        f.write(HEADER.pack(5, 12345) + b"bad!!" + b"\x00" * (4 << 20))

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        assert read_spool(path) == BODIES

    assert len(caplog.records) == 1
    assert "unreadable bytes" in caplog.records[0].getMessage()


def test_corrupted_record_in_the_middle_is_skipped_and_reading_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, BODIES)
    data = bytearray(path.read_bytes())
    second = FIRST_RECORD + HEADER.size + len(BODIES[0])  # offset of the second record
    data[second + HEADER.size + 10] ^= 0xFF  # one flipped bit in its body
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        assert read_spool(path) == [BODIES[0], BODIES[2], BODIES[3]]

    assert "corrupted record" in caplog.records[0].getMessage()


def test_a_file_with_corrupted_records_is_kept_after_resending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, BODIES)
    data = bytearray(path.read_bytes())
    data[FIRST_RECORD + HEADER.size] ^= 0xFF  # the first body
    path.write_bytes(bytes(data))

    (file,) = claim_orphans(tmp_path)
    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        bodies, end = file.read(100, 1 << 20)
    file.commit(end)
    assert bodies == BODIES[1:]
    assert file.done
    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        file.remove()

    assert not path.exists()
    assert path.with_suffix(CORRUPT_SUFFIX).exists()


def test_reading_in_batches_resumes_where_it_was_committed(tmp_path: Path) -> None:
    bodies = [b"event-%d" % i for i in range(25)]
    _write(tmp_path, bodies)
    (file,) = claim_orphans(tmp_path)

    got: list[bytes] = []
    while not file.done:
        batch, end = file.read(10, 1 << 20)
        if len(got) == 10:  # pretend this send failed once: nothing is committed
            again, same_end = file.read(10, 1 << 20)
            assert (again, same_end) == (batch, end)
        got += batch
        file.commit(end)
    file.remove()

    assert got == bodies
    assert not has_spool_files(tmp_path)


def test_a_half_resent_file_is_taken_up_where_it_was_left(tmp_path: Path) -> None:
    bodies = [b"event-%d" % i for i in range(30)]
    path = _write(tmp_path, bodies)
    (first,) = claim_orphans(tmp_path)
    batch, end = first.read(12, 1 << 20)
    first.commit(end)  # Redis acknowledged 12 of them...
    first.release()  # ...then this producer exited

    assert read_spool(path) == bodies[12:]
    (second,) = claim_orphans(tmp_path)
    rest, end = second.read(100, 1 << 20)
    assert batch + rest == bodies
    second.commit(end)
    assert second.done
    second.remove()


def test_live_files_are_not_claimed_orphans_are(tmp_path: Path) -> None:
    live = SpoolWriter(tmp_path)
    live.append([b"live"])
    orphan_path = _write(tmp_path, [b"orphan"])

    claimed = claim_orphans(tmp_path)

    assert [f.path for f in claimed] == [orphan_path]
    live.close()  # the owner lets go: now it is an orphan too
    (again,) = claim_orphans(tmp_path)
    assert read_spool(again.path) == [b"live"]
    for file in [*claimed, again]:
        file.release()


def test_a_claimed_file_is_locked_against_other_claimers(tmp_path: Path) -> None:
    _write(tmp_path, [b"x"])
    (first,) = claim_orphans(tmp_path)

    assert claim_orphans(tmp_path) == []
    first.remove()
    assert claim_orphans(tmp_path) == []


def test_rotated_file_stays_locked_until_removed(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    writer.append([b"one"])
    rotated = writer.rotate()
    assert rotated is not None
    writer.append([b"two"])  # a new file

    assert claim_orphans(tmp_path) == []
    assert rotated.records == 1
    rotated.remove()
    writer.close()
    (left,) = claim_orphans(tmp_path)
    assert read_spool(left.path) == [b"two"]
    left.release()


def test_stale_tmp_files_are_deleted_and_foreign_files_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stale = tmp_path / "00000000000000000001-1-abcd.tmp"
    stale.write_bytes(MAGIC)
    foreign = tmp_path / "00000000000000000002-1-abcd.spool"
    foreign.write_bytes(b"not a spool file at all")

    with caplog.at_level(logging.WARNING, logger="metastream.producer"):
        assert claim_orphans(tmp_path) == []

    assert not stale.exists()
    assert not foreign.exists()
    assert foreign.with_suffix(CORRUPT_SUFFIX).exists()
    assert "not a metastream spool file" in caplog.records[0].getMessage()


def test_a_tmp_file_being_created_is_left_alone(tmp_path: Path) -> None:
    creating = tmp_path / "00000000000000000001-1-abcd.tmp"
    fd = os.open(creating, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert claim_orphans(tmp_path) == []
        assert creating.exists()
    finally:
        os.close(fd)


def test_an_empty_own_file_is_removed_on_close(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    writer.append([b"x"])
    rotated = writer.rotate()
    assert rotated is not None
    rotated.remove()
    writer.close()

    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_partial_record(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    writer.append([b"kept"])
    path = writer.path
    assert path is not None
    size = path.stat().st_size
    real_write = os.write

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[:5])  # part of the batch reaches the file...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", disk_full)
        with pytest.raises(OSError, match="No space left"):
            writer.append([b"lost"])

    assert path.stat().st_size == size
    writer.append([b"after"])
    writer.close()
    assert read_spool(path) == [b"kept", b"after"]


def test_encode_records_matches_what_the_writer_writes(tmp_path: Path) -> None:
    path = _write(tmp_path, BODIES)

    assert path.read_bytes() == FILE_HEADER.pack(MAGIC, FIRST_RECORD) + encode_records(BODIES)
    assert _only_file(tmp_path) == path
