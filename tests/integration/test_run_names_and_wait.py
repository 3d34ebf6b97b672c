"""Unique run names, and ``run.wait()`` / ``Client().wait_for(run)``, through the real stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from metastream import Client, log_metadata, pipeline, pipeline_run, step
from metastream.errors import RunNameTaken
from metastream.pipelines.runs import local_names
from metastream.query import Reader
from tests.integration.stack_fixture import RealStack, clean_env, real_stack

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


@step
def train() -> None:
    log_metadata({"metrics": {"accuracy": 0.95}})
    log_metadata({"metrics": {"recall": 0.5}})


@pipeline
def training() -> None:
    train()


def test_wait_returns_the_run_with_everything_it_published(real_stack: RealStack) -> None:
    run = training()
    view = run.wait(timeout=20)  # no sync() before: wait alone must be enough
    assert view.id == run.id
    assert view.status == "completed"
    assert view.run_metadata == {"train::metrics": {"accuracy": 0.95, "recall": 0.5}}
    # every event of the run: RunStarted, StepStarted, 2 x MetadataLogged, StepFinished,
    # RunFinished
    assert len(run.event_ids) == 6


def test_client_wait_for_a_run_is_the_same(real_stack: RealStack) -> None:
    run = training.with_options(run_name="waited")()
    view = Client(real_stack.settings.db).wait_for(run, timeout=20)
    assert view.name == "waited"
    assert view.steps["train"].run_metadata["metrics"] == {"accuracy": 0.95, "recall": 0.5}


def test_a_name_taken_in_this_process_is_refused_before_anything_is_published(
    real_stack: RealStack,
) -> None:
    with pipeline_run("training", run_name="airflow-42"):
        pass
    published = real_stack.stream_length
    real_stack.sync()
    before = published()
    with pytest.raises(RunNameTaken, match="'airflow-42' exists already"):
        with pipeline_run("training", run_name="airflow-42"):
            pytest.fail("the block must not run")
    real_stack.sync()
    assert published() == before  # no RunStarted for the refused run


def test_a_name_in_the_views_is_refused_in_a_new_process(real_stack: RealStack) -> None:
    training.with_options(run_name="nightly-1")().wait(timeout=20)
    local_names.runs.clear()  # as a new process: only the views know the name
    with pytest.raises(RunNameTaken, match="nightly-1"):
        training.with_options(run_name="nightly-1")()
    with Client(real_stack.settings.db) as client:
        assert client.get_pipeline_run("nightly-1").status == "completed"  # still one run


def test_reader_expands_the_home_directory(
    real_stack: RealStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    training.with_options(run_name="home-run")().wait(timeout=20)
    monkeypatch.setenv("HOME", str(real_stack.settings.db.parent.parent))
    relative = "~/" + str(real_stack.settings.db.relative_to(real_stack.settings.db.parent.parent))
    with Reader(relative) as reader:
        assert reader.run("home-run").name == "home-run"
