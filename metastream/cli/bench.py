"""``metastream bench``: the benchmarks (figures are printed, never asserted)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run a benchmark")
    which = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    r = which.add_parser(
        "replay", help="append N synthetic events, rebuild every view, query a big run"
    )
    r.add_argument("--events", type=int, default=1_000_000, metavar="N")
    r.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    r.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from metastream.benchmarks import replay

    if args.events < 1:
        raise ValueError("--events must be at least 1")
    return replay.main(args.events, args.json)
