"""Runs side by side: the union of their keys, each run's value, what differs from a baseline.

Cards (dict values) are flattened into ``card.field`` keys at any depth, so
that a field that changed inside a card is a row of its own and a numeric
field can be an axis of a plot. A key a run lacks is *absent* (not ``None``,
which is a value that can be logged). Equality is exact: types must match
(``1`` and ``1.0`` differ) and NaN equals NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from metastream.schemas import values_equal

MAX_COMPARED: Final = 20
"""Runs one comparison holds (the reference's limit); more is refused, never cut silently."""


@dataclass(frozen=True, slots=True)
class ComparedKey:
    key: str
    values: list[Any]
    """Each run's value, in the order of the runs (``None`` where ``present`` is false)."""
    present: list[bool]
    differs: list[bool]
    """Whether each run's value (or its absence) differs from the baseline run's."""
    numeric: bool
    """Whether every present value is an int or a float (not a bool): a plot axis."""


def flatten(metadata: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"card": {"a": 1}}`` -> ``{"card.a": 1}``; an empty card stays a value of its own."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if type(value) is dict and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def compare(metadata: Sequence[Mapping[str, Any]], baseline: int = 0) -> list[ComparedKey]:
    """Compare the metadata of up to :data:`MAX_COMPARED` runs against ``metadata[baseline]``."""
    if not metadata:
        raise ValueError("compare needs at least one run")
    if len(metadata) > MAX_COMPARED:
        raise ValueError(
            f"compare takes at most {MAX_COMPARED} runs at once, got {len(metadata)}; "
            "narrow the selection"
        )
    if not 0 <= baseline < len(metadata):
        raise ValueError(f"baseline {baseline} is not one of the {len(metadata)} runs")
    flat = [flatten(m) for m in metadata]
    keys = sorted({k for f in flat for k in f})
    out = []
    for key in keys:
        present = [key in f for f in flat]
        values = [f.get(key) for f in flat]
        base_present, base = present[baseline], values[baseline]
        differs = [
            p != base_present or (p and not values_equal(v, base))
            for p, v in zip(present, values, strict=True)
        ]
        shown = [v for p, v in zip(present, values, strict=True) if p]
        numeric = bool(shown) and all(_is_number(v) for v in shown)
        out.append(ComparedKey(key, values, present, differs, numeric))
    return out


__all__ = ["MAX_COMPARED", "ComparedKey", "compare", "flatten"]
