"""``metastream demo`` as a user runs it: a real stack from the packaged binary, real processes.

METASTREAM_HOME is the test's tmp_path and every other METASTREAM_ variable
is cleared, so the demo starts its own stack on a free port.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from metastream import Client, DType, StorageSize, Uri
from metastream import Path as MetaPath
from metastream.config import Settings
from metastream.stack.server import pid_alive
from metastream.urls import mask_url
from tests.streams import cli, stop_stack_left_in

pytestmark = pytest.mark.redis


@pytest.fixture
def demo_home(home: Path) -> Iterator[Path]:
    """METASTREAM_HOME for the demo; whatever was left running is stopped afterwards."""
    yield home
    stop_stack_left_in(home)


def run_names(out: str) -> list[str]:
    return re.findall(r"^run \d/2 (demo-\S+): ", out, flags=re.MULTILINE)


def started_pids(out: str) -> tuple[int, int]:
    found = re.search(r"\(pid (\d+)\), consumer pid (\d+)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def test_demo_starts_a_stack_runs_twice_prints_and_stops(demo_home: Path) -> None:
    done = cli("demo")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert done.stderr == ""

    # Progress, in order: the stack, both runs, the wait, the stack stopped.
    assert "starting the local stack" in out
    names = run_names(out)
    assert len(names) == 2
    assert names[0].endswith("-lr0.05")
    assert names[1].endswith("-lr0.3")
    assert out.index("waiting for the consumer") < out.index("stopping the local stack")
    assert "metastream is down" in out

    # Each run as `metastream show run` prints it: header, cards as groups, step::key rollups.
    for name in names:
        assert f"run:       {name}" in out
    assert "status:    completed" in out
    assert "  [evaluate_model::metrics]" in out
    assert re.search(r"^    accuracy +0\.\d+$", out, flags=re.MULTILINE)
    assert re.search(r"^  train_model::loss +0\.\d+$", out, flags=re.MULTILINE)
    assert "  [dataset]" in out
    assert "  [load_data::resources]" in out
    assert "localhost:5000" not in out  # no link to a server that does not exist
    assert "model:     demo-classifier, version" in out
    assert re.search(r"^  storage_size +[\d.]+ KB \([\d,]+ bytes\)$", out, flags=re.MULTILINE)

    # The comparison: both runs as columns, a delta column, one row per numeric key.
    header = next(line for line in out.splitlines() if line.startswith("key "))
    assert header.split() == ["key", names[0], names[1], "delta"]
    table = out.split(header, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = {line.split()[0]: line.split()[1:] for line in table}
    assert rows["train_model::hyperparameters.learning_rate"] == ["0.05", "0.3", "+0.25"]
    assert rows["dataset.rows"] == ["800", "800", "="]
    assert "evaluate_model::metrics.f1" in rows

    # Hints, with names that work.
    assert f"metastream show run {names[1]}" in out
    assert f"/compare?runs={names[0]}&runs={names[1]}" in out  # the dashboard's comparison
    assert f"metastream history step train_model loss --run {names[0]}" in out
    settings = Settings.from_env()
    assert f"the database: {settings.db}" in out

    # The stack is stopped.
    server_pid, consumer_pid = started_pids(out)
    assert not settings.stack_file.exists()
    assert not pid_alive(server_pid)
    assert not pid_alive(consumer_pid)

    # The database holds both runs, with every kind of metadata and its types intact.
    with Client(settings.db) as client:
        runs = [client.get_pipeline_run(name) for name in names]
        for run in runs:
            assert run.status == "completed"
            assert list(run.steps) == ["load_data", "train_model", "evaluate_model"]
            metadata = run.run_metadata
            assert not [key for key in metadata if "tracker" in key]
            assert metadata["dataset"]["rows"] == 800
            assert isinstance(metadata["dataset"]["source"], Uri)
            assert set(metadata["evaluate_model::metrics"]) == {
                "accuracy",
                "precision",
                "recall",
                "f1",
                "log_loss",
            }
            assert metadata["environment"]["python"]
            assert isinstance(metadata["duration_seconds"], float)
            loss = client.get_metadata_history(run.steps["train_model"], "loss")
            assert len(loss) == 30
            assert loss[-1].value == metadata["train_model::loss"]
            assert loss[-1].value < loss[0].value
            resources = client.get_metadata_history(run.steps["train_model"], "resources")
            assert resources[0].component == "step_resources"
            assert resources[0].value["wall_seconds"] >= 0
            assert isinstance(resources[0].value["peak_memory"], StorageSize)
        low, high = runs
        assert low.run_metadata["train_model::loss"] > high.run_metadata["train_model::loss"], (
            "a higher learning rate gets further in the same number of epochs"
        )
        assert low.run_metadata["dataset"] == high.run_metadata["dataset"]  # same seed

        model = client.get_model_version("demo-classifier", names[1].removeprefix("demo-"))
        assert model.run_id == high.id
        assert model.run_metadata["metrics"] == high.run_metadata["evaluate_model::metrics"]
        assert model.run_metadata["hyperparameters"]["learning_rate"] == 0.3
        assert set(model.run_metadata["coefficients"]) == {
            "tenure_months",
            "monthly_spend",
            "intercept",
        }

        artifact = client.get_artifact_version("demo-dataset")
        assert artifact.run_id == high.id
        data = artifact.run_metadata
        assert data["row_count"] == 800
        assert data["columns"] == ["tenure_months", "monthly_spend", "churned"]
        assert data["dtypes"] == {
            "tenure_months": "int64",
            "monthly_spend": "float64",
            "churned": "int64",
        }
        assert all(type(v) is DType for v in data["dtypes"].values())
        assert type(data["storage_size"]) is StorageSize
        assert type(data["source"]) is Uri
        assert type(data["path"]) is MetaPath
        csv_file = Path(data["path"])
        assert csv_file.stat().st_size == data["storage_size"]
        assert csv_file.read_text().count("\n") == 801
        assert artifact.uri == str(csv_file.parent)
        assert not client.reader.set_aside()  # nothing rejected or waiting


def test_demo_uses_a_running_stack_and_leaves_it_running(demo_home: Path) -> None:
    assert cli("up", "--detach").returncode == 0
    settings = Settings.from_env()
    record = json.loads(settings.stack_file.read_text())

    first = cli("demo")
    assert first.returncode == 0, first.stdout + first.stderr
    shown = mask_url(record["redis_url"])
    assert f"using the local stack already running at {shown}" in first.stdout
    assert record["redis_url"] not in first.stdout  # the password is masked
    assert "starting the local stack" not in first.stdout
    assert "stopping" not in first.stdout
    assert json.loads(settings.stack_file.read_text()) == record
    assert pid_alive(record["server_pid"])
    assert pid_alive(record["consumer_pid"])

    # Again, quietly: new run names, only the results.
    second = cli("demo", "--quiet")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "using the local stack" not in second.stdout
    assert "waiting for the consumer" not in second.stdout
    names = run_names(first.stdout)
    assert all(name not in second.stdout for name in names)
    with Client(settings.db) as client:
        assert len(client.list_pipeline_runs("demo_training")) == 4

    assert cli("down").returncode == 0
    assert not pid_alive(record["server_pid"])


def test_demo_keep_running_leaves_the_stack_it_started(demo_home: Path) -> None:
    done = cli("demo", "--keep-running")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keeps running" in done.stdout
    server_pid, consumer_pid = started_pids(done.stdout)
    assert pid_alive(server_pid)
    assert pid_alive(consumer_pid)
    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert cli("down").returncode == 0
    assert not pid_alive(server_pid)
