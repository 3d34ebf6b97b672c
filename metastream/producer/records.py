"""The spool file format: a file header, then length-prefixed, checksummed records.

A spool file is a 16-byte header (``MAGIC`` and the offset of the first
record Redis has not acknowledged yet) followed by records, each ``4-byte
length`` + ``4-byte CRC32 of the body`` (both big-endian) + the body (one
encoded event). A crash can only tear the *last* record; the reader
recognises a torn or corrupted record by its length or checksum, logs a
warning and skips it, and never hands out bytes that were not written as one
whole record.

A record header of eight zero bytes marks the end of the written data: a
memory-mapped segment (``segments.py``) is created at its full size, zeroed,
and its tail past the last record is read as "nothing more", not as
corruption. (A record always has a body: an encoded event is never empty.)
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Final

logger = logging.getLogger("metastream.producer.spool")

MAGIC: Final = b"MSSPOOL1"
"""The first bytes of every spool file: the format and its version."""
FILE_HEADER: Final = struct.Struct(">8sQ")
"""``MAGIC``, then the offset of the first record not acknowledged by Redis."""
FIRST_RECORD: Final = FILE_HEADER.size
HEADER: Final = struct.Struct(">II")
"""A record header: body length, CRC32 of the body."""
MAX_RECORD: Final = 1 << 30
"""No event is this large: a header that says so is corruption, not a torn write."""

_CHUNK: Final = 1 << 20
OFFSET: Final = struct.Struct(">Q")
"""The acknowledged offset, at ``len(MAGIC)`` in the file header."""
_pack = HEADER.pack
_crc32 = zlib.crc32


def encode_records(bodies: Iterable[bytes]) -> bytes:
    """The records of ``bodies`` as they are written to a spool file."""
    return b"".join(chain.from_iterable((_pack(len(b), _crc32(b)), b) for b in bodies))


def iter_records(
    fd: int, start: int, end: int, name: str = "", on_corrupt: Callable[[], None] | None = None
) -> Iterator[tuple[bytes, int]]:
    """Yield ``(body, offset after it)`` for each whole record in ``fd`` from ``start`` to ``end``.

    A torn record at the end (an incomplete header, or a length that runs
    past ``end``: what a crash in the middle of ``write()`` leaves) stops the
    iteration with a warning. A record whose checksum is wrong, or whose
    length is impossible, is corruption: the reader warns, calls
    ``on_corrupt``, looks for the next offset where a valid record starts and
    goes on from there.
    """
    pos = start
    buf = b""
    base = start  # the file offset of buf[0]
    while pos < end:
        rel = pos - base
        if rel + HEADER.size > len(buf):
            buf, base, rel = os.pread(fd, min(max(_CHUNK, HEADER.size), end - pos), pos), pos, 0
        if len(buf) < HEADER.size:
            logger.warning(
                "spool %s: incomplete record header at offset %d (%d bytes), "
                "left by a crash; skipped",
                name,
                pos,
                end - pos,
            )
            return
        length, crc = HEADER.unpack_from(buf, rel)
        if length == 0 and crc == 0:  # the zeroed, never written tail of a segment
            return
        body_end = pos + HEADER.size + length
        if 0 < length <= MAX_RECORD and body_end > end:
            logger.warning(
                "spool %s: incomplete record at offset %d (%d of %d bytes), "
                "left by a crash; skipped",
                name,
                pos,
                end - pos,
                HEADER.size + length,
            )
            return
        if 0 < length <= MAX_RECORD:
            if body_end - base > len(buf):
                buf, base, rel = os.pread(fd, max(_CHUNK, body_end - pos), pos), pos, 0
            body = buf[rel + HEADER.size : rel + HEADER.size + length]
            if _crc32(body) == crc:
                pos = body_end
                yield body, pos
                continue
        if on_corrupt is not None:
            on_corrupt()
        found = _resync(fd, pos, end)
        if found is None:
            logger.warning(
                "spool %s: %d unreadable bytes at offset %d up to the end of the file "
                "(a torn or corrupted record); skipped",
                name,
                end - pos,
                pos,
            )
            return
        logger.warning(
            "spool %s: corrupted record; %d bytes skipped at offset %d, reading again at %d",
            name,
            found - pos,
            pos,
            found,
        )
        pos, buf, base = found, b"", found


def _resync(fd: int, pos: int, end: int) -> int | None:
    """The first offset after ``pos`` where a whole, valid record starts."""
    data = os.pread(fd, end - pos, pos)
    unpack_from = HEADER.unpack_from
    # A record starts with a non-zero header: never look for one in a zeroed tail.
    written = len(data.rstrip(b"\0"))
    for i in range(1, min(written, len(data) - HEADER.size)):
        length, crc = unpack_from(data, i)
        if 0 < length <= len(data) - i - HEADER.size:
            start = i + HEADER.size
            if _crc32(data[start : start + length]) == crc:
                return pos + i
    return None


def read_spool(path: Path) -> list[bytes]:
    """The records of ``path`` not yet acknowledged by Redis (for tools and tests; no lock)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        start = unacknowledged_offset(fd)
        if start is None:
            raise ValueError(f"{path} is not a metastream spool file")
        end = os.fstat(fd).st_size
        return [body for body, _ in iter_records(fd, start, end, path.name)]
    finally:
        os.close(fd)


def unacknowledged_offset(fd: int) -> int | None:
    """Where the records not yet acknowledged start, or ``None`` if ``fd`` is no spool file."""
    header = os.pread(fd, FILE_HEADER.size, 0)
    if len(header) < FILE_HEADER.size:
        return None
    magic, offset = FILE_HEADER.unpack(header)
    if magic != MAGIC:
        return None
    if not FIRST_RECORD <= offset <= os.fstat(fd).st_size:
        return FIRST_RECORD  # nonsense: send everything again rather than lose anything
    return int(offset)
