"""``metastream bench``: the benchmarks (figures are printed, never asserted)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run a benchmark")
    p.set_defaults(uses_db=False)  # each benchmark makes its own database
    which = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    r = which.add_parser(
        "replay", help="append N synthetic events, rebuild every view, query a big run"
    )
    r.add_argument(
        "--events", type=int, default=1_000_000, metavar="N", help="events to append (1,000,000)"
    )
    r.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    r.set_defaults(handler=_replay)
    e = which.add_parser(
        "e2e",
        help="producer, consumer and projector processes on a real Redis: calls, throughput, lag",
    )
    e.add_argument(
        "--events", type=int, default=200_000, metavar="N", help="events to publish (200,000)"
    )
    e.add_argument("--rate", type=float, default=50_000, help="events/s for the lag phase")
    e.add_argument("--seconds", type=float, default=30.0, help="length of the lag phase (30)")
    e.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    e.set_defaults(handler=_e2e)
    p2 = which.add_parser("producer", help="the cost of one publish while the sender is busy")
    p2.add_argument(
        "--events", type=int, default=200_000, metavar="N", help="events to publish (200,000)"
    )
    p2.set_defaults(handler=_producer)
    c = which.add_parser("consumer", help="one consumer ingesting a pre-filled stream")
    c.add_argument(
        "--events", type=int, default=100_000, metavar="N", help="events in the stream (100,000)"
    )
    c.add_argument("--max-records", type=int, default=1000, help="entries per read (default: 1000)")
    c.add_argument("--runs", type=int, default=3, help="times to repeat (default: 3)")
    c.set_defaults(handler=_consumer)
    u = which.add_parser(
        "ui", help="server time of the run page, runs list, compare; SSE commit-to-client"
    )
    u.add_argument("--runs", type=int, default=10_000, metavar="N", help="runs in the list")
    u.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    u.set_defaults(handler=_ui)
    s = which.add_parser(
        "subscribe",
        help="a subscriber: catch-up from a large log, live following, XADD-to-handler delay",
    )
    s.add_argument(
        "--events", type=int, default=1_000_000, metavar="N", help="events in the log (1,000,000)"
    )
    s.add_argument("--live", type=int, default=100_000, metavar="M", help="events followed live")
    s.add_argument("--delays", type=int, default=5_000, metavar="K", help="events timed one by one")
    s.add_argument("--rate", type=float, default=2_000, help="events/s while timing the delay")
    s.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    s.set_defaults(handler=_subscribe)


def _replay(args: argparse.Namespace) -> int:
    from metastream.benchmarks import replay

    if args.events < 1:
        raise ValueError("--events must be at least 1")
    return replay.main(args.events, args.json)


def _e2e(args: argparse.Namespace) -> int:
    from metastream.benchmarks import e2e

    if args.events < 1 or args.rate <= 0 or args.seconds <= 0:
        raise ValueError("--events, --rate and --seconds must be positive")
    return e2e.main(args.events, args.rate, args.seconds, args.json)


def _producer(args: argparse.Namespace) -> int:
    from metastream.benchmarks import producer

    return producer.main([str(args.events)])


def _consumer(args: argparse.Namespace) -> int:
    from metastream.benchmarks import consumer

    consumer.main(
        [
            "--events",
            str(args.events),
            "--max-records",
            str(args.max_records),
            "--runs",
            str(args.runs),
        ]
    )
    return 0


def _ui(args: argparse.Namespace) -> int:
    from metastream.benchmarks import ui

    if args.runs < 1:
        raise ValueError("--runs must be at least 1")
    return ui.main(args.json, args.runs)


def _subscribe(args: argparse.Namespace) -> int:
    from metastream.benchmarks import subscribe

    if min(args.events, args.live, args.delays) < 1 or args.rate <= 0:
        raise ValueError("--events, --live, --delays and --rate must be positive")
    return subscribe.main(args.events, args.live, args.delays, args.rate, args.json)
