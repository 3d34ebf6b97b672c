"""compose.yaml's quality-guard service: examples/quality_guard.py against the stack."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_quality_guard_service_runs_the_example_against_the_stack() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    guard = compose["services"]["quality-guard"]
    (mounted,) = guard["configs"]
    source = compose["configs"][mounted["source"]]["file"]
    assert (ROOT / source).resolve() == ROOT / "examples" / "quality_guard.py"
    assert guard["command"] == ["python", mounted["target"]]
    env = guard["environment"]
    assert env["METASTREAM_REDIS_URL"] == "redis://redis:6379/0"
    assert env["METASTREAM_UI_URL"].startswith("http://ui:")  # history through the events feed
    assert set(guard["depends_on"]) == {"redis", "ui"}
    assert guard["image"] == compose["services"]["ui"]["image"]
