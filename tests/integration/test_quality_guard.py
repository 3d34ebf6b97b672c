"""The example service (examples/quality_guard.py) against the real stack, as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metastream import log_metadata, pipeline, step
from metastream.pipelines import PipelineRun
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.streams import eventually, stop_process

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name

GUARD = Path(__file__).resolve().parents[2] / "examples" / "quality_guard.py"


@step
def evaluate(accuracy: float) -> None:
    log_metadata(metadata={"metrics": {"accuracy": accuracy, "f1": accuracy - 0.02}})


@pipeline
def training(accuracy: float) -> None:
    evaluate(accuracy)


def test_the_quality_guard_alerts_on_a_regressed_run(real_stack: RealStack, tmp_path: Path) -> None:
    stack = real_stack
    before = [training(a) for a in (0.90, 0.91, 0.89)]  # history: the guard replays it
    stack.sync()
    out = tmp_path / "guard.out"
    with out.open("wb") as sink:
        guard = subprocess.Popen(
            [sys.executable, str(GUARD)],
            env=dict(os.environ, QUALITY_GUARD_TOLERANCE="0.05"),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        fine: PipelineRun = training(0.88)  # live: within tolerance of the baseline
        bad: PipelineRun = training(0.70)
        assert eventually(lambda: "ALERT" in out.read_text(), 60), out.read_text()
        stack.sync()
        assert eventually(
            lambda: "quality_guard" in stack.client.get_pipeline_run(bad.name).run_metadata, 20
        )
    finally:
        assert stop_process(guard) == 0, out.read_text()  # type: ignore[arg-type]
    alert = stack.client.get_pipeline_run(bad.name).run_metadata["quality_guard"]
    assert alert["regressed"] is True
    assert alert["value"] == 0.70
    assert alert["baseline_runs"] == 4
    assert abs(alert["baseline"] - (0.90 + 0.91 + 0.89 + 0.88) / 4) < 1e-9
    lines = [line for line in out.read_text().splitlines() if line.startswith("ALERT")]
    assert lines == [
        f"ALERT quality regression: pipeline training run {bad.id} metrics.accuracy=0.7000 "
        "baseline=0.8950 (mean of 4 runs, tolerance 0.05)"
    ]
    for run in (*before, fine):
        assert "quality_guard" not in stack.client.get_pipeline_run(run.name).run_metadata
