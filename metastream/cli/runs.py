"""``metastream runs`` (``ls``): the pipeline runs, newest first, with a few numbers each."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any, Final

from metastream.cli.colour import Palette
from metastream.cli.common import echo, settings
from metastream.cli.render import iso, json_text, show_value, table, when
from metastream.cli.times import parse_since
from metastream.durations import human_duration
from metastream.query import Reader, browse
from metastream.schemas.jsonform import metadata_json_form

DEFAULT_LIMIT: Final = 20
SHOWN_KEYS: Final = 3
"""Numeric keys shown as columns when ``--key`` is not given: the most common ones."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "runs",
        aliases=["ls"],
        help="list pipeline runs, newest first",
        description=(
            "List pipeline runs, newest first: name, pipeline, status, start time, duration, "
            f"and up to {SHOWN_KEYS} numeric keys (the most common among the runs shown; "
            "step keys as step::key)."
        ),
    )
    p.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    p.add_argument("--status", choices=browse.RUN_STATUSES, help="only runs with this status")
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="only runs started since WHEN: a duration back from now (30m, 2h, 3d, 1w) "
        "or an ISO time (2026-11-23T15:00, local time unless it has an offset)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N runs (default: {DEFAULT_LIMIT}); says when more match",
    )
    p.add_argument(
        "--key",
        action="append",
        metavar="KEY",
        help="a numeric key to show as a column (repeat for more; step keys as step::key)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (values in the form of docs/views.md, times ISO 8601)",
    )
    p.set_defaults(handler=runs)


def _rows(reader: Reader, args: argparse.Namespace) -> tuple[list[browse.RunRow], bool]:
    """Up to ``--limit`` runs matching the filters, and whether more match."""
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, not {args.limit}")
    since = None if args.since is None else parse_since(args.since, time.time())
    found: list[browse.RunRow] = []
    cursor: str | None = None
    while True:
        page = browse.list_runs_page(
            reader,
            pipeline=args.pipeline,
            status=args.status,
            since=since,
            limit=min(args.limit - len(found), browse.MAX_PAGE),
            cursor=cursor,
        )
        found.extend(page.runs)
        cursor = page.next_cursor
        if cursor is None or len(found) >= args.limit:
            return found, cursor is not None


def _duration(run: browse.RunRow) -> float | None:
    if run.created is None or run.finished is None:
        return None
    return max(0.0, float((run.finished - run.created).total_seconds()))


def _keys(metrics: dict[bytes, dict[str, int | float]], chosen: list[str] | None) -> list[str]:
    if chosen:
        return list(dict.fromkeys(chosen))
    counts = Counter(key for values in metrics.values() for key in values)
    ranked = sorted(counts, key=lambda k: ("::" in k, -counts[k], k))  # own keys first
    return ranked[:SHOWN_KEYS]


def runs(args: argparse.Namespace) -> int:
    with Reader(settings(args).db) as reader:
        found, more = _rows(reader, args)
        metrics = browse.run_metrics(reader, [r.id.bytes for r in found])
    if args.json:
        print(json_text({"runs": [_json(r, metrics[r.id.bytes]) for r in found], "more": more}))
        return 0
    if not found:
        echo("no runs match" if _filtered(args) else "no runs yet")
        return 0
    keys = _keys(metrics, args.key)
    rows = [
        [
            r.name,
            r.pipeline_name or "-",
            r.status or "-",
            when(r.created),
            "-" if (d := _duration(r)) is None else human_duration(d),
            *(_metric(metrics[r.id.bytes], key) for key in keys),
        ]
        for r in found
    ]
    headers = ["run", "pipeline", "status", "started", "duration", *keys]
    echo(table(headers, rows, palette=Palette.of(sys.stdout), status_column=2))
    if more:
        echo(
            f"(the {len(found):,} newest shown; more runs match: --limit {args.limit * 2} "
            "or narrow with --pipeline, --status, --since)",
            file=sys.stderr,
        )
    return 0


def _filtered(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.pipeline, args.status, args.since))


def _metric(values: dict[str, int | float], key: str) -> str:
    return show_value(values[key]) if key in values else "-"


def _json(run: browse.RunRow, metrics: dict[str, int | float]) -> dict[str, Any]:
    return {
        "run": run.name,
        "id": str(run.id),
        "pipeline": run.pipeline_name,
        "status": run.status,
        "started": iso(run.created),
        "finished": iso(run.finished),
        "duration_s": _duration(run),
        "error": run.error,
        "metrics": metadata_json_form(metrics),
    }
