"""How long something took or how old it is, as people read it: one wording everywhere.

The CLI (``runs``, ``status``, ``spool list``, ``dead-letters list``) and the
dashboard's pages format time spans through here, so the same run shows the
same duration in the terminal and in the browser.
"""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """``420 ms``, ``4.25 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``, ``3 d 04 h``."""
    # Each range ends where its rounding would print the next one's unit: 0.9996 s is
    # "1.00 s", not "1000 ms"; 59.96 s is "1 min 00 s", not "60.0 s".
    if seconds < 0.9995:
        return f"{max(seconds, 0) * 1000:.0f} ms"  # most steps of a small pipeline
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def short_age(seconds: float) -> str:
    """An age for a table column, in its largest whole unit: ``45s``, ``12m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"
