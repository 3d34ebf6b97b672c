"""Control characters: refused in metadata keys, shown escaped everywhere else.

One definition serves both sides. A metadata key with one of these is
refused at the call; any other user string (a value, a run or step name, a
dead letter's stream or reason) may hold them, and is shown with them
escaped, so that printing it can neither drive the terminal (``\\x1b[2J``
clears the screen, an OSC sequence sets the window title, ``\\r`` overwrites
the line) nor hide or reorder text (bidirectional overrides).

The characters: C0 controls (``\\x00``-``\\x1f``, tab and newline
included), DEL and the C1 controls (``\\x7f``-``\\x9f``; ``\\x9b`` is a
one-byte CSI), the line and paragraph separators (U+2028, U+2029), the
bidirectional embeddings, overrides and isolates (U+202A-U+202E,
U+2066-U+2069), and lone surrogates (U+D800-U+DFFF, which UTF-8 cannot
encode).
"""

from __future__ import annotations

import re
from typing import Final

CONTROL_CHARACTERS: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a character of :data:`CONTROL_CHARACTERS`.

    ``str.isprintable`` is true for nearly every real string and is a fast C
    loop; the exact pattern only runs when it says no.
    """
    return not text.isprintable() and CONTROL_CHARACTERS.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with each control character written as ``\\xNN`` or ``\\uNNNN``.

    Everything else is left as it is (backslashes too, so a Windows path
    stays readable); the result holds no control character, so escaping it
    again changes nothing.
    """
    if text.isprintable():
        return text
    return CONTROL_CHARACTERS.sub(_escape, text)


__all__ = ["CONTROL_CHARACTERS", "escape_controls", "has_control_characters"]
