"""Fixtures of the tests that run the consumer as a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from metastream.config import Settings
from tests.streams import consumer_settings


@pytest.fixture
def s(settings: Settings, stream: str, redis_url: str) -> Settings:
    """The consumer's settings: the test's stream, small batches, a quick reclaim."""
    return consumer_settings(settings, stream, redis_url, max_records=200, claim_idle_ms=500)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Where the consumer process writes its output."""
    return tmp_path / "consumer.log"


def output(log: Path) -> str:
    """What the consumer printed, for failure messages."""
    return log.read_text(errors="replace") if log.exists() else ""
