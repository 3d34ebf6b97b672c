"""``metastream demo``: run an example pipeline twice and show what was recorded."""

from __future__ import annotations

import argparse
from typing import Any

from metastream.cli.common import settings as settings_of


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run an example pipeline twice on the local stack and show its metadata",
        description=(
            "Start the local stack (unless it is up already, or METASTREAM_REDIS_URL is set), "
            "run a small example pipeline (load data, train, evaluate) twice with two learning "
            "rates, print each run's metadata and the two runs side by side, and stop the "
            "stack again. Needs nothing installed beyond metastream."
        ),
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="leave a stack the demo started running (stop it with `metastream down`)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the results")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from metastream.demo import run_demo

    run_demo(settings_of(args), keep_running=args.keep_running, quiet=args.quiet)
    return 0
