"""``import metastream`` is cheap, and a consumer or subscriber never loads the producer."""

from __future__ import annotations

import subprocess
import sys

import pytest

PRODUCER_PARTS = ("metastream.producer", "metastream.pipelines")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import metastream",
        "import metastream.subscriber",
        "import metastream.consumer.app",
        "import metastream.cli",
    ],
)
def test_importing_does_not_load_the_producer(statement: str) -> None:
    loaded = _loaded_after(statement)
    assert not [m for m in loaded if m.startswith(PRODUCER_PARTS)], statement


def test_the_public_names_load_on_first_use() -> None:
    loaded = _loaded_after("from metastream import log_metadata, Client, Uri")
    assert "metastream.pipelines.log" in loaded
    assert "metastream.query.client" in loaded
