"""``metastream spool list`` and ``retry``: events waiting on this machine, and those set aside."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from metastream.cli.common import settings as settings_of
from metastream.cli.render import clip, columns
from metastream.durations import short_age


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "spool",
        help="list spooled events, or retry files set aside",
        description=(
            "Events that could not be sent yet wait in the spool directory "
            "($METASTREAM_HOME/spool) until the local stack sends them. Events Redis would "
            "not take, after retries, are set aside in .failed files with the reason."
        ),
    )
    commands = parser.add_subparsers(dest="spool_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)

    listing = commands.add_parser("list", help="show spooled files and files set aside")
    listing.set_defaults(handler=cmd_list)

    retry = commands.add_parser(
        "retry",
        help="put files set aside back in the spool (once the cause is fixed)",
        description="Rename each .failed file back to .spool, so that the stack sends it again.",
    )
    retry.add_argument("files", nargs="*", metavar="FILE", help="set-aside files (from `list`)")
    retry.add_argument("--all", action="store_true", help="retry every file set aside")
    retry.set_defaults(handler=cmd_retry)


def cmd_list(args: argparse.Namespace) -> int:
    from metastream.producer.setaside import set_aside_files
    from metastream.producer.summary import spooled_files

    directory = settings_of(args).spool_dir
    waiting = spooled_files(directory)
    aside = set_aside_files(directory)
    if not waiting:
        print(f"no spooled events in {directory}")
    else:
        rows = [("FILE", "EVENTS", "BYTES", "AGE")] + [
            (
                f.path.name + (" (left by a killed process)" if f.orphaned else ""),
                f"{f.events:,}",
                f"{f.bytes:,}",
                short_age(f.age_s),
            )
            for f in waiting
        ]
        print("\n".join(columns(rows)))
        total = sum(f.events for f in waiting)
        print(f"{total:,} events in {len(waiting)} file(s), sent by the stack when it is up")
    if aside:
        now = time.time()
        print()
        print("set aside (Redis would not take them; `metastream spool retry FILE|--all`):")
        rows = [("FILE", "EVENTS", "REASON", "AGE")] + [
            (a.path.name, f"{a.events:,}", clip(a.reason), short_age(a.age(now))) for a in aside
        ]
        print("\n".join(columns(rows)))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from metastream.producer.setaside import put_back, set_aside_files

    if args.all == bool(args.files):
        raise ValueError("give the set-aside files to retry, or --all (not both)")
    directory = settings_of(args).spool_dir
    if args.all:
        paths = [a.path for a in set_aside_files(directory)]
    else:
        paths = [_resolve(directory, name) for name in args.files]
    for path in paths:
        try:
            target = put_back(path)
        except FileNotFoundError:
            raise ValueError(f"no set-aside file {path.name} in {directory}") from None
        print(f"{path.name} -> {target.name}")
    print(f"put back {len(paths)} file{'s' if len(paths) != 1 else ''}")
    return 0


def _resolve(directory: Path, name: str) -> Path:
    path = Path(name)
    return path if path.parent != Path() else directory / name
