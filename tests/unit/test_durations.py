"""Durations and ages read the same in the terminal and on the dashboard's pages."""

from __future__ import annotations

import datetime

from metastream.api.pages import _duration
from metastream.durations import human_duration, short_age


def test_durations_read_as_people_say_them() -> None:
    spans = (0.0, 0.4204, 4.254, 12.34, 65, 3 * 3600 + 185, 2 * 86400 + 4 * 3600)
    assert [human_duration(s) for s in spans] == [
        "0 ms",
        "420 ms",
        "4.25 s",
        "12.3 s",
        "1 min 05 s",
        "3 h 03 min",
        "2 d 04 h",
    ]


def test_no_range_rounds_into_the_next_ones_unit() -> None:
    assert human_duration(0.9996) == "1.00 s"
    assert human_duration(9.996) == "10.0 s"
    assert human_duration(59.96) == "1 min 00 s"
    assert human_duration(3599.6) == "1 h 00 min"


def test_a_page_shows_the_duration_the_cli_shows() -> None:
    start = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
    for seconds in (0.25, 7.5, 65, 4000):
        end = start + datetime.timedelta(seconds=seconds)
        assert _duration(start, end) == human_duration(seconds)
    assert _duration(start, None) == ""


def test_ages_in_table_columns_use_their_largest_whole_unit() -> None:
    assert [short_age(s) for s in (0, 59, 60, 3599, 7200, 3 * 86400)] == [
        "0s",
        "59s",
        "1m",
        "59m",
        "2h",
        "3d",
    ]
