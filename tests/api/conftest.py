from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from metastream.api import create_app
from tests.api.sample import Sample, build


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    return build(tmp_path / "metastream.db")


@pytest.fixture
def client(sample: Sample) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(sample.path)) as test_client:
        yield test_client
