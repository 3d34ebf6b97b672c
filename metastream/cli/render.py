"""Turning metadata into readable terminal text, and into JSON.

A nested dict is a "card": shown as a group with its fields indented under
it. Special types are shown for what they mean (a ``StorageSize`` in human
units, a ``Uri`` as the link itself).

Every user string goes through :func:`safe` (control characters escaped, see
``metastream.schemas.text``) before it is laid out, so widths are those of
what is printed; ``metastream.cli.common.echo`` applies it once more to each
line it prints. JSON output is :func:`json_text`: the documented JSON form of
values (``metastream.schemas.jsonform``), times in ISO 8601, never a bare
``NaN``, and the same control characters as ``\\uNNNN`` escapes.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from metastream.cli.colour import PLAIN, Palette, join
from metastream.query.views import ArtifactVersionView, ModelVersionView, RunView, StepView
from metastream.schemas import DType, Path, StorageSize, Uri
from metastream.schemas.text import CONTROL_CHARACTERS, escape_controls

safe = escape_controls
"""A user string as the terminal may show it: control characters escaped (``\\x1b``)."""

SHOWN_DEPTH: Final = 16
"""Containers shown inside one another in a table cell; deeper ones are shown as ``…``.
Values are at most ``METASTREAM_MAX_DEPTH`` deep when logged, but an older log
may hold deeper ones, and a cell is no place for them (``--json`` has them all)."""


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def show_value(value: Any, depth: int = SHOWN_DEPTH) -> str:
    """One value as one line of text, control characters escaped.

    Containers nested more than ``depth`` deep are shown as ``…``.
    """
    if isinstance(value, StorageSize):
        return f"{human_size(value)} ({int(value):,} bytes)"
    if isinstance(value, Uri | Path | DType):
        return safe(str(value))
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, set | frozenset | tuple | list | dict):
        return _show_container(value, depth)
    return safe(repr(value))


def _show_container(value: Any, depth: int) -> str:
    if depth <= 0:
        return "…"
    inner = depth - 1
    parts = []
    if isinstance(value, dict):
        for k, v in value.items():
            parts.append(f"{safe(str(k))}: {show_value(v, inner)}")
        return "{" + ", ".join(parts) + "}"
    for v in value:
        parts.append(show_value(v, inner))
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(parts)) + "}" if value else "set()"
    if isinstance(value, tuple):
        return "(" + ", ".join(parts) + ("," if len(value) == 1 else "") + ")"
    return "[" + ", ".join(parts) + "]"


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    # json.dumps escapes the C0 controls inside strings: a newline here is layout
    return char if char == "\n" else f"\\u{ord(char):04x}"


def json_text(data: Any, *, indent: int | None = None) -> str:
    """``data`` (JSON types only: see ``metastream.schemas.jsonform``) as JSON text.

    Never writes ``NaN`` or ``Infinity`` (a value that slipped past the JSON
    form raises ``ValueError``), and writes control characters as ``\\uNNNN``
    escapes, so the text is valid JSON and safe in a terminal. Non-ASCII text
    stays readable.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))  # values an older log may hold nest deeper
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, indent=indent)
    finally:
        sys.setrecursionlimit(limit)
    return CONTROL_CHARACTERS.sub(_json_escape, text)


def iso(value: datetime.datetime | None) -> str | None:
    """A time as ISO 8601 (for JSON output), ``None`` when unknown."""
    return value.isoformat() if value else None


def iso_ts(ts: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC time (for JSON output)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def metadata_lines(metadata: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """Plain keys as an aligned table, then each card as a group."""
    if not metadata:
        return [f"{indent}(no metadata)"]
    plain = {k: v for k, v in metadata.items() if not isinstance(v, dict)}
    cards = {k: v for k, v in metadata.items() if isinstance(v, dict)}
    lines = _table(plain.items(), indent)
    for name, card in cards.items():
        lines.append(f"{indent}[{safe(name)}]")
        lines.extend(_table(card.items(), indent * 2) if card else [f"{indent * 2}(empty)"])
    return lines


def _table(items: Iterable[tuple[str, Any]], indent: str) -> list[str]:
    rows = [(safe(k), show_value(v)) for k, v in items]
    if not rows:
        return []
    width = min(max(len(k) for k, _ in rows), 40)
    return [f"{indent}{k:<{width}}  {v}" for k, v in rows]


REASON_WIDTH: Final = 60
"""How much of a reason ``dead-letters list`` and ``spool list`` show."""


def clip(text: str, width: int = REASON_WIDTH) -> str:
    """``text`` on one line, shown :func:`safe`, cut to ``width`` characters with an ellipsis."""
    text = safe(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows (the first one the header) as lines of aligned columns; the last one unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in rows
    ]


def table(
    headers: list[str],
    rows: list[list[str]],
    *,
    palette: Palette = PLAIN,
    status_column: int | None = None,
) -> list[str]:
    """A plain text table with a header rule; cells are shown :func:`safe`.

    With a palette that is on, the header is bold and the cells of
    ``status_column`` are in their status's colour (widths are unchanged).
    """
    rows = [[safe(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [palette.bold(head)]
    out.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        plain = "  ".join(cells).rstrip()
        if status_column is None or not palette.on:
            out.append(plain)
            continue
        before = "".join(c + "  " for c in cells[:status_column])
        status = cells[status_column]
        after = "".join("  " + c for c in cells[status_column + 1 :]).rstrip()
        if not after:
            status = status.rstrip()
        out.append(join(before, palette.status(status), after))  # shown as ``plain``
    return out


def when(value: datetime.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def run_header(run: RunView) -> dict[str, str]:
    """The lines above a run's metadata, as ``metastream show run`` prints them."""
    header = {
        "run": run.name,
        "id": str(run.id),
        "pipeline": run.pipeline_name or "-",
        "status": run.status or "-",
        "started": when(run.created),
        "finished": when(run.finished),
    }
    if run.error:
        header["error"] = run.error
    return header


def step_header(step: StepView) -> dict[str, str]:
    header = {
        "step": step.name,
        "id": str(step.id),
        "run": str(step.run_id),
        "status": step.status or "-",
        "started": when(step.created),
        "finished": when(step.finished),
    }
    if step.error:
        header["error"] = step.error
    return header


def artifact_header(artifact: ArtifactVersionView) -> dict[str, str]:
    header = {
        "artifact": artifact.name,
        "version": artifact.version,
        "id": str(artifact.id),
        "created": when(artifact.created),
    }
    if artifact.uri:
        header["uri"] = artifact.uri
    return header


def model_header(model: ModelVersionView) -> dict[str, str]:
    return {
        "model": model.name,
        "version": model.version,
        "id": str(model.id),
        "created": when(model.created),
    }


def json_header(
    view: RunView | StepView | ArtifactVersionView | ModelVersionView,
) -> dict[str, Any]:
    """The fields above an entity's metadata in ``show --json``: times in ISO 8601,
    ``null`` for what is unknown."""
    if isinstance(view, RunView):
        return {
            "run": view.name,
            "id": str(view.id),
            "pipeline": view.pipeline_name,
            "status": view.status,
            "started": iso(view.created),
            "finished": iso(view.finished),
            "error": view.error,
        }
    if isinstance(view, StepView):
        return {
            "step": view.name,
            "id": str(view.id),
            "run": str(view.run_id),
            "status": view.status,
            "started": iso(view.created),
            "finished": iso(view.finished),
            "error": view.error,
        }
    if isinstance(view, ArtifactVersionView):
        return {
            "artifact": view.name,
            "version": view.version,
            "id": str(view.id),
            "created": iso(view.created),
            "uri": view.uri,
        }
    return {
        "model": view.name,
        "version": view.version,
        "id": str(view.id),
        "created": iso(view.created),
    }


def entity_lines(
    header: dict[str, str],
    metadata: Mapping[str, Any],
    steps: Iterable[StepView] = (),
    *,
    artifacts: Iterable[ArtifactVersionView] = (),
    palette: Palette = PLAIN,
) -> list[str]:
    """An entity as ``metastream show`` prints it: header, metadata, then its steps and
    the artifact versions it produced."""
    lines = [
        join(f"{key + ':':<10} ", palette.status(value) if key == "status" else safe(value))
        for key, value in header.items()
    ]
    lines.append("metadata:")
    lines.extend(metadata_lines(metadata))
    rows = [[s.name, s.status or "-", when(s.created), str(len(s.run_metadata))] for s in steps]
    if rows:
        lines.append("steps:")
        shown = table(["step", "status", "started", "keys"], rows, palette=palette, status_column=1)
        lines.extend(join("  ", line) for line in shown)
    if artifacts:
        lines.append("artifacts:")
        rows = [[a.name, a.version, when(a.created)] for a in artifacts]
        shown = table(["artifact", "version", "created"], rows, palette=palette)
        lines.extend(join("  ", line) for line in shown)
    return lines
