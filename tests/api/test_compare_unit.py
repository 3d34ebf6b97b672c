"""``metastream.query.compare``: flattening cards, absent keys, exact equality."""

from __future__ import annotations

import math

import pytest

from metastream.query.compare import MAX_COMPARED, compare, flatten


def test_cards_flatten_to_fields_and_empty_cards_stay_values() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": 2}, "e": {}, "f": 3}) == {
        "a.b.c": 1,
        "a.d": 2,
        "e": {},
        "f": 3,
    }


def test_absent_differs_from_none_and_types_must_match() -> None:
    rows = {
        k.key: k
        for k in compare(
            [{"x": None, "n": 1, "nan": math.nan}, {"n": 1.0, "nan": math.nan}, {"x": None, "n": 1}]
        )
    }
    assert rows["x"].present == [True, False, True]
    assert rows["x"].differs == [False, True, False]
    assert rows["n"].differs == [False, True, False]  # 1.0 is not 1
    assert rows["nan"].differs == [False, False, True]  # NaN equals NaN; absent differs
    assert rows["n"].numeric


def test_more_than_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_COMPARED}"):
        compare([{}] * (MAX_COMPARED + 1))
    with pytest.raises(ValueError, match="baseline"):
        compare([{}], baseline=1)
