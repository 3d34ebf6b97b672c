"""Turning metadata into readable terminal text.

A nested dict is a "card": shown as a group with its fields indented under
it. Special types are shown for what they mean (a ``StorageSize`` in human
units, a ``Uri`` as the link itself).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import Any

from metastream.query.views import ArtifactVersionView, ModelVersionView, RunView, StepView
from metastream.schemas import DType, Path, StorageSize, Uri


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def show_value(value: Any) -> str:
    """One value as text."""
    if isinstance(value, StorageSize):
        return f"{human_size(value)} ({int(value):,} bytes)"
    if isinstance(value, Uri | Path | DType):
        return str(value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, set | frozenset):
        inner = ", ".join(sorted(show_value(v) for v in value))
        return "{" + inner + "}" if value else "set()"
    if isinstance(value, tuple):
        return (
            "(" + ", ".join(show_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        )
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def metadata_lines(metadata: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """Plain keys as an aligned table, then each card as a group."""
    if not metadata:
        return [f"{indent}(no metadata)"]
    plain = {k: v for k, v in metadata.items() if not isinstance(v, dict)}
    cards = {k: v for k, v in metadata.items() if isinstance(v, dict)}
    lines = _table(plain.items(), indent)
    for name, card in cards.items():
        lines.append(f"{indent}[{name}]")
        lines.extend(_table(card.items(), indent * 2) if card else [f"{indent * 2}(empty)"])
    return lines


def _table(items: Iterable[tuple[str, Any]], indent: str) -> list[str]:
    rows = [(k, show_value(v)) for k, v in items]
    if not rows:
        return []
    width = min(max(len(k) for k, _ in rows), 40)
    return [f"{indent}{k:<{width}}  {v}" for k, v in rows]


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A plain text table with a header rule."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
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


def entity_lines(
    header: dict[str, str], metadata: Mapping[str, Any], steps: Iterable[StepView] = ()
) -> list[str]:
    """An entity as ``metastream show`` prints it: header, metadata, then its steps."""
    lines = [f"{key + ':':<10} {value}" for key, value in header.items()]
    lines.append("metadata:")
    lines.extend(metadata_lines(metadata))
    rows = [[s.name, s.status or "-", when(s.created), str(len(s.run_metadata))] for s in steps]
    if rows:
        lines.append("steps:")
        lines.extend("  " + line for line in table(["step", "status", "started", "keys"], rows))
    return lines
