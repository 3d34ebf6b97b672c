"""compose.yaml runs the projector as a service of its own, on the consumers' database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def services() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data["services"]  # type: ignore[no-any-return]


def test_one_projector_writes_the_views_of_the_consumers_database() -> None:
    found = services()
    projector, consumer = found["projector"], found["consumer"]
    assert projector["command"] == ["metastream", "project"]
    assert projector["environment"]["METASTREAM_DB"] == consumer["environment"]["METASTREAM_DB"]
    assert projector["volumes"] == consumer["volumes"]
    assert projector["stop_signal"] == "SIGTERM"
    assert "replicas" not in projector.get("deploy", {})


def test_the_consumers_start_no_projector_of_their_own() -> None:
    assert services()["consumer"]["environment"]["METASTREAM_PROJECTOR"] == "0"
