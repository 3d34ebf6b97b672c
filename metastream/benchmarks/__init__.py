"""Benchmarks run by ``metastream bench`` (and the scripts in ``bench/``)."""

import sys
from collections.abc import Sequence


def say(quiet: bool, text: str) -> None:
    """A progress or result line on stderr, unless ``quiet``."""
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0.99: p99) of ``ordered`` (sorted, not empty), as is."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
