"""Helpers shared by the CLI's modules."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from metastream.config import Settings
from metastream.schemas.text import escape_controls


def settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with ``--db`` applied."""
    found = Settings.from_env()
    db = getattr(args, "db", None)
    return found.with_(db=Path(db).expanduser()) if db else found


def echo(lines: str | Iterable[str], file: TextIO | None = None) -> None:
    """Print text line by line, with every control character escaped (``\\x1b``).

    What every command prints goes through here (JSON output through
    ``metastream.cli.render.json_text``), so no user string (a key, a value,
    a name, a stream field) can drive the terminal.
    """
    out = file or sys.stdout
    for line in lines.split("\n") if isinstance(lines, str) else lines:
        print(escape_controls(line), file=out)


class ProgressBar:
    """``bar(done, total)``: a progress line on stderr, redrawn at most twice a second."""

    def __init__(self, label: str, *, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.last = 0.0
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not self.enabled or (now - self.last < 0.5 and not finished):
            return
        self.last = now
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(now - self.started, 1e-9)
        print(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:,}/{total:,} ({rate:,.0f}/s)",
            end="\n" if finished else "",
            file=sys.stderr,
            flush=True,
        )
