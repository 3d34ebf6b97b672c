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
from metastream.schemas.text import escape_controls

DB_HELP = "the SQLite database (default: $METASTREAM_DB, else $METASTREAM_HOME/metastream.db)"


def _parser() -> argparse.ArgumentParser:
    from metastream import __version__
    from metastream.cli import bench, runs, views

    parser = argparse.ArgumentParser(
        prog="metastream",
        description="Event-sourced metadata for ML pipelines.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"metastream {__version__}",
        help="print the version and exit",
    )
    parser.add_argument("--db", help=DB_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (runs, views, bench, *_optional_modules()):
        module.register(sub)
    _finish(parser)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (each subcommand's, at any depth), once each."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found.append(child)
                found.extend(_subparsers(child))
    return found


def _finish(parser: argparse.ArgumentParser) -> None:
    """What every subcommand gets: ``--db`` after it too, and a description.

    ``metastream show run R --db X`` works as ``metastream --db X show run
    R``: the subcommand's ``--db`` defaults to ``SUPPRESS``, so a ``--db``
    given before the subcommand is kept when none is given after it. A
    command that reads no database (``set_defaults(uses_db=False)``: the
    benchmarks make their own) does not offer it. A
    subcommand without a description shows its one-line help under ``-h``.
    """
    children = _subparsers(parser)
    own_db: set[int] = set()  # commands that make their own databases (bench, schema), and theirs
    for child in children:
        if child.get_default("uses_db") is False:
            own_db.update(id(c) for c in (child, *_subparsers(child)))
    for child in children:
        if id(child) not in own_db and "--db" not in child._option_string_actions:
            child.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    for holder in (parser, *children):
        for action in holder._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    child = action.choices[choice.dest]
                    if child.description is None:
                        child.description = choice.help


def _optional_modules() -> list[ModuleType]:
    """Command groups added by other parts of metastream (stack, consumer, ...)."""
    import importlib

    found = []
    for name in (
        "stack",
        "consumer",
        "projector",
        "dead_letters",
        "demo",
        "spool",
        "ui",
        "schema",
        "tail",
    ):
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
        print(f"metastream: {escape_controls(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metastream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
