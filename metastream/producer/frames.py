"""``XADD`` commands for a whole batch, written with C-level loops only.

The sender thread shares the GIL with the code that publishes, so what it
does per event must cost almost nothing in Python, and nothing it does may
hold the GIL for long. A batch is written as ``XADD <stream> * __data__
<body>`` per event without a Python-level loop over the events: ``map(len)``,
a dict of ready-made command headers keyed by body length, ``zip`` and
``BytesIO.writelines`` all run in C, about 0.2 µs an event.

The frames go into one ``BytesIO`` that is reused from batch to batch. A
fresh ``bytes`` for each batch (``b"".join``) cost 0.17 µs an event for
batches under ~200 KB but 0.55–0.7 µs above 1 MB on this machine kind: the
allocator hands large blocks back to the kernel, and faulting the pages in
again is what costs, all of it while holding the GIL.
"""

from __future__ import annotations

import io
from itertools import chain
from typing import Final

from metastream.constants import DATA_FIELD

CRLF: Final = b"\r\n"
_MAX_CACHED_HEADERS: Final = 4096


class _Headers(dict[int, bytes]):
    """``headers[n]``: everything written before a body of length ``n``, made once."""

    def __init__(self, template: bytes) -> None:
        super().__init__()
        self.template = template

    def __missing__(self, length: int) -> bytes:
        if len(self) >= _MAX_CACHED_HEADERS:  # bodies of many sizes: don't grow without bound
            self.clear()
        header = self[length] = self.template % length
        return header


class XaddFrames:
    """Pipelined ``XADD stream * __data__ <body>``, one command per event, one reply each."""

    def __init__(self, stream: str) -> None:
        name = stream.encode()
        field = DATA_FIELD.encode()
        fixed = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$%d\r\n%s\r\n" % (
            len(name),
            name,
            len(field),
            field,
        )
        template = fixed.replace(b"%", b"%%") + b"$%d\r\n"
        self._first = _Headers(template)
        self._next = _Headers(CRLF + template)  # ends the previous body, starts the next command

    def write(self, buffer: io.BytesIO, bodies: list[bytes]) -> int:
        """Write the commands for ``bodies`` at the start of ``buffer``; return their size.

        Bytes after that size are left over from an earlier, larger batch.
        """
        if not bodies:
            return 0
        first = bodies[0]
        rest = bodies[1:]
        buffer.seek(0)
        buffer.write(self._first[len(first)])
        buffer.write(first)
        buffer.writelines(
            chain.from_iterable(zip(map(self._next.__getitem__, map(len, rest)), rest, strict=True))
        )
        buffer.write(CRLF)
        return buffer.tell()

    def encode(self, bodies: list[bytes]) -> bytes:
        """The commands for ``bodies`` as one ``bytes`` (for tests and tools)."""
        buffer = io.BytesIO()
        size = self.write(buffer, bodies)
        return buffer.getvalue()[:size]
