"""The ``metastream`` command.

Each group of subcommands lives in its own module with a ``register(sub)``
function that adds its parsers; a parser's ``handler(args) -> int`` does the
work. User mistakes (a name that matches nothing, a missing database) are
printed as one line on stderr with exit code 1, never as a traceback
(``METASTREAM_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from metastream.errors import MetastreamError


def _parser() -> argparse.ArgumentParser:
    from metastream.cli import bench, views

    parser = argparse.ArgumentParser(
        prog="metastream",
        description="Event-sourced metadata for ML pipelines.",
    )
    parser.add_argument(
        "--db",
        help="the SQLite database (default: $METASTREAM_DB, else $METASTREAM_HOME/metastream.db)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (views, bench, *_optional_modules()):
        module.register(sub)
    return parser


def _optional_modules() -> list[ModuleType]:
    """Command groups added by other parts of metastream (stack, consumer, ...)."""
    import importlib

    found = []
    for name in ("stack", "consumer", "dead_letters", "demo", "spool", "ui", "schema"):
        try:
            found.append(importlib.import_module(f"metastream.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"metastream.cli.{name}":
                raise
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (MetastreamError, ValueError) as exc:
        if os.environ.get("METASTREAM_DEBUG"):
            raise
        print(f"metastream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metastream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
