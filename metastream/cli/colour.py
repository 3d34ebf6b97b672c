"""Colour on a terminal, and only there.

Colour is on when the stream is a terminal (and ``TERM`` is not ``dumb``),
off when ``NO_COLOR`` is set to any non-empty value (https://no-color.org),
and on for a stream that is not a terminal when ``FORCE_COLOR`` is set to a
non-empty value other than ``0``; ``NO_COLOR`` wins over ``FORCE_COLOR``.

What is coloured is :class:`Styled` text: user strings escaped first (see
``metastream.schemas.text``), then wrapped in our own SGR codes, so that
``metastream.cli.common.echo`` can print it without escaping those codes
while every other line is still escaped whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, TextIO

from metastream.schemas.text import escape_controls

RESET: Final = "\x1b[0m"
BOLD: Final = "1"
STATUS_CODES: Final = {
    "completed": "32",  # green
    "failed": "31",  # red
    "rejected": "31",
    "running": "33",  # yellow
    "waiting": "33",
}


class Styled(str):
    """Text that is safe to print as it is: escaped user text inside our own colour codes."""

    __slots__ = ()


def enabled(stream: TextIO) -> bool:
    """Whether text written to ``stream`` should be coloured (see the module's docstring)."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force and force != "0":
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


@dataclass(frozen=True, slots=True)
class Palette:
    """How one stream's output is coloured; with ``on`` false every method returns its input."""

    on: bool

    @classmethod
    def of(cls, stream: TextIO) -> Palette:
        return cls(enabled(stream))

    def paint(self, text: str, code: str | None) -> str:
        """``text`` escaped and in colour ``code`` (an SGR parameter), or as it is when off."""
        if not self.on or code is None:
            return text
        return Styled(f"\x1b[{code}m{escape_controls(text)}{RESET}")

    def bold(self, text: str) -> str:
        return self.paint(text, BOLD)

    def status(self, text: str) -> str:
        """A status word (``completed``, ``failed``, ``running``, ...) in its colour."""
        return self.paint(text, STATUS_CODES.get(text.strip()))


def join(*parts: str) -> str:
    """One line of plain and :class:`Styled` parts: plain parts escaped, the line ``Styled``.

    Plain when no part is styled, so that nothing changes with colour off.
    """
    if not any(isinstance(p, Styled) for p in parts):
        return "".join(parts)
    return Styled("".join(p if isinstance(p, Styled) else escape_controls(p) for p in parts))


PLAIN: Final = Palette(False)

__all__ = ["PLAIN", "Palette", "Styled", "enabled", "join"]
