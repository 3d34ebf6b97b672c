"""Helpers shared by the CLI's modules."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from metastream.cli.colour import Styled
from metastream.config import Settings
from metastream.errors import MetastreamError
from metastream.schemas.text import escape_controls

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
"""The log lines of the long-running commands (consume, project, up in the foreground)."""


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, for a command that runs until stopped."""
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default: INFO)",
    )


def configure_logging(level: str) -> None:
    """Log lines at ``level`` and above to stderr, in ``LOG_FORMAT``."""
    import logging

    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr)


def run_alone(
    prog: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
) -> int:
    """One command without the rest of the CLI (``python -m metastream.consumer``, ...).

    ``--db`` and the command's own arguments; a ``MetastreamError`` is one
    line on stderr and exit code 1, as in ``metastream.cli.main``.
    """
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--db", help="the SQLite database")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return handler(args)
    except MetastreamError as exc:
        print(f"metastream: {escape_controls(str(exc))}", file=sys.stderr)
        return 1


def settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with ``--db`` applied."""
    found = Settings.from_env()
    db = getattr(args, "db", None)
    return found.with_(db=Path(db).expanduser()) if db else found


def echo(lines: str | Iterable[str], file: TextIO | None = None) -> None:
    """Print text line by line, with every control character escaped (``\\x1b``).

    What every command prints goes through here (JSON output through
    ``metastream.cli.render.json_text``), so no user string (a key, a value,
    a name, a stream field) can drive the terminal. A line that is
    :class:`~metastream.cli.colour.Styled` (escaped already, coloured by
    ``metastream.cli.colour``) is printed as it is.
    """
    out = file or sys.stdout
    for line in lines.split("\n") if isinstance(lines, str) else lines:
        print(line if isinstance(line, Styled) else escape_controls(line), file=out)


class ProgressBar:
    """``bar(done, total)``: progress on stderr, and the rate the summary states.

    On a terminal the line is redrawn in place, at most twice a second. On
    anything else (a pipe, a log file, CI) a line is printed each time
    another tenth is done, each on its own line. The rate is ``done`` over
    the seconds since the bar was made, on one clock (``time.perf_counter``):
    :meth:`elapsed` and :meth:`rate` give the figures for the summary, so
    the last line shown and the summary agree.
    """

    def __init__(self, label: str, *, enabled: bool = True, file: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.file = file
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.last = -1.0
        self.tenths = 0
        self.done = 0

    def _stream(self) -> TextIO:
        return self.file or sys.stderr

    def elapsed(self) -> float:
        """Seconds from the bar's start to the call that completed it (or to now)."""
        end = self.ended if self.ended is not None else time.perf_counter()
        return end - self.started

    def rate(self, done: int | None = None) -> float:
        """Items per second: ``done`` (default: the last count shown) over :meth:`elapsed`."""
        return (self.done if done is None else done) / max(self.elapsed(), 1e-9)

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        self.done = done
        if finished and self.ended is None:
            self.ended = now
        if not self.enabled:
            return
        stream = self._stream()
        on_terminal = stream.isatty()
        if on_terminal:
            if now - self.last < 0.5 and not finished:
                return
        else:
            tenths = 10 * done // max(total, 1)
            if tenths <= self.tenths:
                return
            self.tenths = tenths
        self.last = now
        width = 30
        filled = min(width, width * done // max(total, 1))
        rate = done / max((self.ended or now) - self.started, 1e-9)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:,}/{total:,} ({rate:,.0f}/s)"
        )
        if on_terminal:
            print(f"\r{line}", end="\n" if finished else "", file=stream, flush=True)
        else:
            print(line, file=stream, flush=True)
