"""Fixtures for unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metastream.pipelines import emit
from tests.unit.pipeline_helpers import Published


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, home: object) -> Iterator[Published]:
    """Events the pipeline API would send, kept instead (a seam for tests of logic)."""
    captured = Published()
    monkeypatch.setattr("metastream.producer.get_producer", lambda: captured)
    emit.settings.cache_clear()
    yield captured
    emit.settings.cache_clear()
