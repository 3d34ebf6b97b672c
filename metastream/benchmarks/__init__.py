"""Benchmarks run by ``metastream bench`` (and the scripts in ``bench/``)."""

import sys


def say(quiet: bool, text: str) -> None:
    """A progress or result line on stderr, unless ``quiet``."""
    if not quiet:
        print(text, file=sys.stderr, flush=True)
