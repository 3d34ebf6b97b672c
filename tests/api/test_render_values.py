"""Values on the pages read as they do in the comparison table (and as Python writes them)."""

from __future__ import annotations

import re
from typing import Any

from metastream.api.render import value_html


def shown(value: Any) -> str:
    """The text a reader sees: the HTML without its tags."""
    return re.sub(r"<[^>]+>", "", str(value_html(value)))


def test_containers_keep_their_brackets() -> None:
    assert shown((3, 4)) == "(3, 4)tuple"
    assert shown([3, 4]) == "[3, 4]"
    assert shown({2, 1}) == "{1, 2}set"


def test_ints_are_grouped_like_the_comparison_table() -> None:
    assert shown(1000) == "1,000"
