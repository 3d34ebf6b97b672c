"""Pipelines, steps, their lifecycle events, outputs, models and stack components."""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path
from typing import Annotated

import pytest

import metastream
from metastream import (
    Model,
    StackComponent,
    StepRunInfo,
    get_pipeline_context,
    log_metadata,
    pipeline,
    pipeline_run,
    step,
)
from metastream.pipelines import EnvironmentComponent, GitComponent, emit
from metastream.pipelines.components import configured_components
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    MetadataType,
    ModelVersionRegistered,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    Uri,
    model_version_id_for,
)
from tests.unit.pipeline_helpers import Published


def test_the_public_api_is_exactly_these_names() -> None:
    assert sorted(metastream.__all__) == sorted(
        [
            "Client",
            "DType",
            "MetadataType",
            "Model",
            "Path",
            "PipelineRun",
            "StackComponent",
            "StepRunInfo",
            "StorageSize",
            "Uri",
            "flush",
            "get_pipeline_context",
            "get_step_context",
            "log_metadata",
            "pipeline",
            "pipeline_run",
            "step",
            "subscribe",
        ]
    )
    for name in metastream.__all__:
        assert getattr(metastream, name) is not None


def kinds(published: Published) -> list[str]:
    return [type(e).__name__ for e in published.events]


def test_a_pipeline_runs_its_steps_in_order_and_records_them(published: Published) -> None:
    calls = []

    @step
    def load() -> int:
        calls.append("load")
        return 41

    @step
    def train(x: int) -> int:
        calls.append("train")
        return x + 1

    @pipeline
    def training() -> None:
        train(load())

    run = training()
    assert calls == ["load", "train"]
    assert run.status == "completed"
    assert kinds(published) == [
        "RunStarted",
        "StepStarted",
        "ArtifactVersionRegistered",
        "StepFinished",
        "StepStarted",
        "ArtifactVersionRegistered",
        "StepFinished",
        "RunFinished",
    ]
    (started,) = published.of(RunStarted)
    assert (started.run_id, started.pipeline_name) == (run.id, "training")
    assert started.name.startswith("training-")
    assert [s.name for s in published.of(StepStarted)] == ["load", "train"]
    assert {s.run_id for s in published.of(StepStarted)} == {run.id}
    assert published.of(RunFinished)[0].status == "completed"


def test_run_names_are_unique_unless_given(published: Published) -> None:
    @pipeline
    def p() -> None:
        pass

    assert p().name != p().name
    assert p.with_options(run_name="nightly")().name == "nightly"

    @pipeline(run_name="fixed")
    def q() -> None:
        pass

    assert q().name == "fixed"


def test_a_failing_step_records_its_error_and_re_raises(published: Published) -> None:
    @step
    def boom() -> None:
        raise ValueError("bad data")

    @pipeline
    def p() -> None:
        boom()

    with pytest.raises(ValueError, match="bad data"):
        p()
    (finished,) = published.of(StepFinished)
    assert (finished.status, finished.error) == ("failed", "ValueError: bad data")
    (run_finished,) = published.of(RunFinished)
    assert run_finished.status == "failed"
    assert "bad data" in (run_finished.error or "")
    assert published.of(ArtifactVersionRegistered) == []


def test_outputs_are_named_as_in_the_reference(published: Published) -> None:
    @step
    def one() -> int:
        return 1

    @step
    def two() -> tuple[int, str]:
        return 1, "a"

    @step
    def named() -> tuple[Annotated[int, "features"], Annotated[int, "labels"]]:
        return 1, 2

    @step
    def nothing() -> None:
        pass

    @step
    def unannotated():  # type: ignore[no-untyped-def]
        return 1, 2, 3

    @pipeline(name="pipe")
    def p() -> None:
        one()
        two()
        named()
        nothing()
        unannotated()

    p()
    assert [a.name for a in published.of(ArtifactVersionRegistered)] == [
        "pipe::one::output",
        "pipe::two::output_0",
        "pipe::two::output_1",
        "features",
        "labels",
        "pipe::unannotated::output_0",
        "pipe::unannotated::output_1",
        "pipe::unannotated::output_2",
    ]
    assert all(a.version is None for a in published.of(ArtifactVersionRegistered))


def test_a_step_called_twice_gets_a_second_name_and_id_names_it(published: Published) -> None:
    @step
    def train(model_class: str) -> None:
        pass

    @pipeline(extra={"model_configs": [("sklearn.tree", "A"), ("sklearn.ensemble", "B")]})
    def p() -> None:
        context = get_pipeline_context()
        for i, (_, model_class) in enumerate(context.extra["model_configs"]):
            train(model_class=model_class, id=f"train_model_{i}")
        train(model_class="C")
        train(model_class="D")

    p()
    assert [s.name for s in published.of(StepStarted)] == [
        "train_model_0",
        "train_model_1",
        "train",
        "train_2",
    ]


def test_an_explicit_step_id_must_be_unique_in_the_run(published: Published) -> None:
    @step
    def s() -> None:
        pass

    @pipeline
    def p() -> None:
        s(id="x")
        s(id="x")

    with pytest.raises(ValueError, match="already has a step 'x'"):
        p()


def test_a_step_outside_a_pipeline_is_a_one_step_run(published: Published) -> None:
    @step
    def alone() -> None:
        log_metadata({"k": 1})

    alone()
    assert kinds(published) == [
        "RunStarted",
        "StepStarted",
        "MetadataLogged",
        "StepFinished",
        "RunFinished",
    ]
    assert published.of(RunStarted)[0].pipeline_name == "alone"


def test_the_pipeline_context_is_only_inside_a_pipeline() -> None:
    with pytest.raises(RuntimeError, match="only available inside a pipeline function"):
        get_pipeline_context()


def test_pipelines_do_not_nest(published: Published) -> None:
    @pipeline
    def inner() -> None:
        pass

    @pipeline
    def outer() -> None:
        inner()

    with pytest.raises(RuntimeError, match="pipelines do not nest"):
        outer()


def test_a_named_model_version_is_registered_once_per_run_with_a_stable_id(
    published: Published,
) -> None:
    @step
    def a() -> None:
        log_metadata({"x": 1}, infer_model=True)

    @step
    def b() -> None:
        log_metadata({"y": 2}, infer_model=True)

    @pipeline(model=Model("fraud", "1.0"))
    def p() -> None:
        a()
        b()

    p()
    (registered,) = published.of(ModelVersionRegistered)
    assert registered.model_version_id == model_version_id_for("fraud", "1.0")
    assert {m.target.id for m in published.metadata} == {registered.model_version_id}


def test_an_unnamed_model_version_is_new_in_every_run(published: Published) -> None:
    @pipeline(model=Model("fraud"))
    def p() -> None:
        pass

    p()
    p()
    first, second = published.of(ModelVersionRegistered)
    assert first.version is None
    assert first.model_version_id != second.model_version_id


def test_pipeline_run_for_code_another_orchestrator_drives(published: Published) -> None:
    with pipeline_run("training", run_name="airflow-42") as run:
        with run.step("train", outputs=["model"]) as context:
            assert context.step_run.name == "train"
            log_metadata({"loss": 0.1})
            log_metadata({"params": 10}, infer_artifact=True)
        with pytest.raises(KeyError), run.step("evaluate"):
            raise KeyError("missing column")
    assert run.status == "completed"
    finished = published.of(StepFinished)
    assert [f.status for f in finished] == ["completed", "failed"]
    (artifact,) = published.of(ArtifactVersionRegistered)
    assert artifact.name == "model"
    assert published.metadata[-1].target == ById(
        kind="artifact_version", id=artifact.artifact_version_id
    )


class Recorder(StackComponent):
    def __init__(self) -> None:
        self.seen: list[StepRunInfo] = []

    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        return {"tracking_uri": Uri(f"http://tracker/{run_id}")}

    def get_step_run_metadata(self, info: StepRunInfo) -> dict[str, MetadataType]:
        self.seen.append(info)
        return {"tracker_run": f"{info.step_name}-{info.status}"}


def test_components_add_run_and_step_metadata_keyed_to_themselves(published: Published) -> None:
    recorder = Recorder()

    @step
    def ok() -> None:
        pass

    @step
    def fails() -> None:
        raise RuntimeError("x")

    @pipeline(components=[recorder])
    def p() -> None:
        ok()
        fails()

    with pytest.raises(RuntimeError):
        p()
    run_md, ok_md, fail_md = published.metadata
    assert isinstance(run_md.metadata["tracking_uri"], Uri)
    assert run_md.target.kind == "pipeline_run"
    assert (ok_md.metadata, fail_md.metadata) == (
        {"tracker_run": "ok-completed"},
        {"tracker_run": "fails-failed"},
    )
    assert {m.component for m in published.metadata} == {"recorder"}
    assert [i.status for i in recorder.seen] == ["completed", "failed"]
    assert recorder.seen[1].error == "RuntimeError: x"
    names = kinds(published)
    assert names.index("MetadataLogged", 2) < names.index("StepFinished")


class Broken(StackComponent):
    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        raise ConnectionError("tracker down")

    def get_step_run_metadata(self, info: StepRunInfo) -> dict[str, MetadataType]:
        return {"bad": object()}  # type: ignore[dict-item]


def test_a_failing_component_is_skipped_with_a_warning(
    published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    @step
    def s() -> None:
        pass

    @pipeline(components=[Broken()])
    def p() -> None:
        s()

    with caplog.at_level(logging.WARNING):
        assert p().status == "completed"
    assert "stack component 'broken' failed to give pipeline run metadata" in caplog.text
    assert "tracker down" in caplog.text
    assert "failed to give step run metadata" in caplog.text
    assert published.metadata == []


class Oversized(StackComponent):
    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        return {"huge": "x" * 70_000}


def test_a_component_value_over_the_size_limit_is_skipped_with_a_warning(
    published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    @pipeline(components=[Oversized()])
    def p() -> None:
        pass

    with caplog.at_level(logging.WARNING):
        assert p().status == "completed"
    assert "stack component 'oversized' failed to give pipeline run metadata" in caplog.text
    assert "'huge'" in caplog.text
    assert published.metadata == []


class Nested(StackComponent):
    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        return {"tree": {"a": {"b": {"c": 1}}}}


def test_a_component_value_deeper_than_max_depth_is_skipped_with_a_warning(
    published: Published, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METASTREAM_MAX_DEPTH", "2")
    emit.settings.cache_clear()

    @pipeline(components=[Nested()])
    def p() -> None:
        pass

    with caplog.at_level(logging.WARNING):
        assert p().status == "completed"
    assert "nested more than 2 levels deep" in caplog.text
    assert published.metadata == []


def test_the_git_component(tmp_path: Path, published: Published) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    found = GitComponent(str(tmp_path)).get_pipeline_run_metadata(uuid.uuid4())
    card = found["git"]
    assert isinstance(card, dict)
    assert card["branch"] == "main"
    assert len(str(card["commit"])) == 40
    assert card["dirty"] is False
    (tmp_path / "new.txt").write_text("x")
    assert GitComponent(str(tmp_path)).get_pipeline_run_metadata(uuid.uuid4())["git"]["dirty"]  # type: ignore[index]


def test_the_git_component_outside_a_repository_gives_nothing(tmp_path: Path) -> None:
    assert GitComponent(str(tmp_path)).get_pipeline_run_metadata(uuid.uuid4()) == {}


def test_the_environment_component() -> None:
    found = EnvironmentComponent(("msgspec", "not-a-package")).get_pipeline_run_metadata(
        uuid.uuid4()
    )
    assert set(found["environment"]) == {"python", "platform", "host"}  # type: ignore[arg-type]
    assert list(found["packages"]) == ["msgspec"]  # type: ignore[arg-type]


def test_components_configured_for_every_pipeline(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "METASTREAM_COMPONENTS", "environment, tests.unit.test_pipeline_api:Recorder"
    )
    found = configured_components()
    assert [c.name for c in found] == ["environment", "recorder"]

    @pipeline
    def p() -> None:
        pass

    p()
    assert {m.component for m in published.metadata} == {"environment", "recorder"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "neither a built-in component"),
        ("no.such.module:X", "cannot load"),
        ("tests.unit.test_pipeline_api:kinds", "is not a StackComponent"),
    ],
)
def test_bad_component_configuration_is_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configured_components(spec)


@pytest.mark.parametrize(
    ("class_name", "name"),
    [
        ("MyTracker", "my_tracker"),
        ("MLflowTracker", "mlflow_tracker"),
        ("GCPArtifactStore", "gcp_artifact_store"),
        ("S3Store", "s3_store"),
        ("Git", "git"),
    ],
)
def test_component_names_keep_acronyms_and_brands_whole(class_name: str, name: str) -> None:
    component = type(class_name, (StackComponent,), {})()
    assert component.name == name
