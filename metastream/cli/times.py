"""Times as the CLI takes them: ``--as-of`` and ``--since``."""

from __future__ import annotations

import datetime
import re
from typing import Final

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str) -> float:
    """An ISO 8601 time (local time when it has no offset) as Unix seconds.

    ``ValueError`` when it is not one: the caller says what else its option takes.
    """
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from ``now`` (``30m``, ``2h``, ``3d``, ``1w``) or an
    ISO 8601 time, as Unix seconds."""
    match = _DURATION.match(text)
    if match is not None:
        return now - float(match[1]) * _UNIT_SECONDS[match[2]]
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a duration like 30m, 2h, 3d, 1w "
            "nor an ISO time like 2026-11-23T15:00"
        ) from None


__all__ = ["parse_since", "parse_time"]
