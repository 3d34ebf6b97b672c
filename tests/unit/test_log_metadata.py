"""log_metadata: every form of the reference, its precedence, and its errors."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated

import pytest

from metastream import Model, StackComponent, get_step_context, log_metadata, pipeline, step
from metastream.pipelines import emit
from metastream.schemas import (
    ArtifactByName,
    ArtifactVersionRegistered,
    ById,
    MetadataType,
    ModelByName,
    ModelVersionRegistered,
    RunByName,
    StepByName,
    StorageSize,
)
from tests.unit.pipeline_helpers import Published

ID = uuid.UUID("6c7b7a9e-5a57-4d2c-9a48-4c7f3a7e0b11")


@pytest.mark.parametrize(
    ("kwargs", "target"),
    [
        ({"step_id": ID}, ById(kind="step_run", id=ID)),
        ({"step_id": str(ID)}, ById(kind="step_run", id=ID)),
        (
            {"step_name": "train", "run_id_name_or_prefix": "my_run"},
            StepByName(run="my_run", step_name="train"),
        ),
        ({"run_id_name_or_prefix": ID}, RunByName(name_id_or_prefix=str(ID))),
        ({"run_id_name_or_prefix": "my_run"}, RunByName(name_id_or_prefix="my_run")),
        ({"model_name": "fraud", "model_version": "1.0"}, ModelByName(name="fraud", version="1.0")),
        ({"model_name": "fraud", "model_version": 3}, ModelByName(name="fraud", version="3")),
        ({"model_version_id": ID}, ById(kind="model_version", id=ID)),
        (
            {"artifact_name": "data", "artifact_version": "20230615"},
            ArtifactByName(name="data", version="20230615"),
        ),
        ({"artifact_version_id": ID}, ById(kind="artifact_version", id=ID)),
    ],
)
def test_each_form_names_its_target(published: Published, kwargs: dict, target: object) -> None:
    handle = log_metadata({"k": 1}, **kwargs)
    (event,) = published.metadata
    assert event.target == target
    assert event.metadata == {"k": 1}
    assert handle.event_ids == (event.event_id,)


def test_inside_a_step_without_a_target_it_goes_to_the_step(published: Published) -> None:
    @step
    def train() -> None:
        log_metadata({"accuracy": 0.9})

    @pipeline
    def p() -> None:
        train()

    p()
    (logged,) = published.metadata
    (started,) = [e for e in published.events if type(e).__name__ == "StepStarted"]
    assert logged.target == ById(kind="step_run", id=started.step_id)


@pytest.mark.parametrize(
    ("kwargs", "ignored"),
    [
        ({"step_id": ID, "step_name": "train"}, "step_name"),
        ({"step_id": ID, "model_name": "m", "model_version": "1"}, "model_name, model_version"),
        ({"run_id_name_or_prefix": "r", "artifact_version_id": ID}, "artifact_version_id"),
        ({"model_name": "m", "model_version": "1", "infer_model": True}, "infer_model"),
        ({"artifact_name": "a", "artifact_version": "1", "infer_artifact": True}, "infer_artifact"),
        ({"artifact_version_id": ID, "artifact_name": "a"}, "artifact_name"),
    ],
)
def test_arguments_the_chosen_form_would_ignore_are_an_error(
    published: Published, kwargs: dict, ignored: str
) -> None:
    with pytest.raises(ValueError, match=f"so {ignored} would be ignored"):
        log_metadata({"k": 1}, **kwargs)
    assert published.bodies == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"step_name": "train"},
        {"model_name": "m"},
        {"model_version": "1"},
        {"artifact_name": "a"},
        {"artifact_version": "1"},
    ],
)
def test_an_incomplete_form_lists_the_possible_ones(published: Published, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="alone do.* not name a target") as caught:
        log_metadata({"k": 1}, **kwargs)
    assert "log_metadata(metadata, artifact_version_id=...)" in str(caught.value)


def test_outside_a_step_an_identifier_is_needed(published: Published) -> None:
    with pytest.raises(ValueError, match="outside a step"):
        log_metadata({"k": 1})


def test_infer_model_needs_a_step_with_a_model(published: Published) -> None:
    with pytest.raises(ValueError, match="works inside a step"):
        log_metadata({"k": 1}, infer_model=True)

    @step
    def no_model() -> None:
        log_metadata({"k": 1}, infer_model=True)

    with pytest.raises(ValueError, match="step 'no_model' has no model"):
        no_model()


def test_infer_model_targets_the_steps_model_version(published: Published) -> None:
    @step(model=Model("fraud", "1.0"))
    def train() -> None:
        log_metadata({"auc": 0.9}, infer_model=True)

    train()
    (registered,) = published.of(ModelVersionRegistered)
    (logged,) = published.metadata
    assert logged.target == ById(kind="model_version", id=registered.model_version_id)


def test_infer_artifact_outside_a_step_is_an_error(published: Published) -> None:
    with pytest.raises(ValueError, match="works inside a step with outputs"):
        log_metadata({"k": 1}, infer_artifact=True)


def test_infer_artifact_goes_to_the_output_once_it_exists(published: Published) -> None:
    @step
    def process() -> Annotated[list[int], "processed_data"]:
        log_metadata({"rows": 3, "size": StorageSize(24)}, infer_artifact=True)
        assert published.metadata == []  # held until the artifact exists
        return [1, 2, 3]

    process()
    (artifact,) = published.of(ArtifactVersionRegistered)
    (logged,) = published.metadata
    assert artifact.name == "processed_data"
    assert logged.target == ById(kind="artifact_version", id=artifact.artifact_version_id)
    names = [type(e).__name__ for e in published.events]
    assert names.index("ArtifactVersionRegistered") < names.index("MetadataLogged")


def test_infer_artifact_picks_an_output_by_name(published: Published) -> None:
    @step
    def split() -> tuple[list[int], list[int]]:
        log_metadata({"train_size": 2}, artifact_name="output_0", infer_artifact=True)
        return [1, 2], [3]

    split()
    artifacts = {a.name.rsplit("::", 1)[1]: a for a in published.of(ArtifactVersionRegistered)}
    (logged,) = published.metadata
    assert set(artifacts) == {"output_0", "output_1"}
    assert logged.target.id == artifacts["output_0"].artifact_version_id


def test_infer_artifact_with_a_declared_output_checks_the_name_at_the_call(
    published: Published,
) -> None:
    @step
    def split() -> tuple[int, int]:
        log_metadata({"k": 1}, artifact_name="nope", infer_artifact=True)
        return 1, 2

    with pytest.raises(ValueError, match="has no output 'nope'; its outputs: output_0, output_1"):
        split()

    @step
    def two() -> tuple[int, int]:
        log_metadata({"k": 1}, infer_artifact=True)
        return 1, 2

    with pytest.raises(ValueError, match="has 2 outputs .* pass artifact_name="):
        two()


def test_infer_artifact_without_annotations_is_checked_when_the_step_returns(
    published: Published,
) -> None:
    @step
    def split():  # type: ignore[no-untyped-def]
        log_metadata({"k": 1}, infer_artifact=True)
        return 1, 2

    with pytest.raises(ValueError, match="needs exactly one output, but the step produced 2"):
        split()
    assert published.metadata == []


def test_artifact_metadata_of_a_failing_step_is_not_saved_and_says_so(
    published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    handle = None

    @step
    def fails() -> int:
        nonlocal handle
        handle = log_metadata({"rows": 3}, infer_artifact=True)
        raise RuntimeError("disk full")

    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="disk full"):
        fails()
    assert "artifact metadata logged in step 'fails' (rows) was not saved" in caplog.text
    assert published.metadata == []
    assert handle is not None
    assert "disk full" in (handle.deferred.discarded or "")


def test_bad_metadata_is_refused_before_anything_is_published(published: Published) -> None:
    with pytest.raises(ValueError, match="contains ':'"):
        log_metadata({"a:b": 1}, run_id_name_or_prefix="r")
    with pytest.raises(TypeError, match="'x'"):
        log_metadata({"x": object()}, run_id_name_or_prefix="r")
    with pytest.raises(ValueError, match="'big'.*the limit is 65,536"):
        log_metadata({"big": "x" * 70_000}, run_id_name_or_prefix="r")
    with pytest.raises(ValueError, match="step_id='nope' is not a UUID"):
        log_metadata({"k": 1}, step_id="nope")
    assert published.bodies == []


def test_the_step_context_inside_a_step(published: Published) -> None:
    seen = {}

    @step
    def train() -> int:
        context = get_step_context()
        seen.update(
            pipeline=context.pipeline.name,
            run=context.pipeline_run.name,
            run_id=context.pipeline_run.id,
            step=context.step_run.name,
            uri=context.get_output_artifact_uri(),
        )
        with pytest.raises(NotImplementedError, match="does not store artifacts"):
            context.get_output_materializer()
        with pytest.raises(ValueError, match="has no output 'other'"):
            context.get_output_artifact_uri("other")
        return 1

    @pipeline(run_name="run-7")
    def training() -> None:
        train()

    run = training()
    assert seen["pipeline"] == "training"
    assert seen["run"] == "run-7"
    assert seen["run_id"] == run.id
    assert seen["step"] == "train"
    assert seen["uri"].endswith("artifacts/training/run-7/train/output")
    assert Path(seen["uri"]).is_dir()  # ready to write the output into
    with pytest.raises(RuntimeError, match="only available inside a step"):
        get_step_context()


# -- limits checked at the call (issue 7, findings 2 and 10) -------------------


def test_an_event_over_the_size_limit_is_refused_with_its_key_count_and_size(
    published: Published,
) -> None:
    values = {f"v{i}": "x" * 60_000 for i in range(20)}  # each under 64 KiB, 1.2 MB together
    with pytest.raises(ValueError, match=r"20 keys make an event of 1,200,\d{3} bytes") as raised:
        log_metadata(values, run_id_name_or_prefix="r")
    message = str(raised.value)
    assert "the limit is 1,048,576 bytes" in message
    assert "METASTREAM_MAX_EVENT_BYTES" in message
    assert "pipeline run 'r'" in message
    log_metadata(dict(list(values.items())[:17]), run_id_name_or_prefix="r")  # 1.02 MB is fine
    assert len(published.bodies) == 1


def test_many_small_keys_are_one_event_and_count_against_the_limit(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METASTREAM_MAX_EVENT_BYTES", "10000")
    emit.settings.cache_clear()
    with pytest.raises(ValueError, match=r"2,000 keys make an event of \d\d,\d{3} bytes"):
        log_metadata({f"metric_{i}": i for i in range(2000)}, step_id=ID)
    assert published.bodies == []


def test_the_event_limit_holds_for_components_and_deferred_artifact_metadata(
    published: Published, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("METASTREAM_MAX_EVENT_BYTES", "10000")
    emit.settings.cache_clear()
    many = {f"k{i}": i for i in range(2000)}

    class Chatty(StackComponent):
        def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
            return dict(many)  # type: ignore[arg-type]

    @step
    def make() -> Annotated[int, "data"]:
        with pytest.raises(ValueError, match="2,000 keys make an event"):
            log_metadata(many, infer_artifact=True)  # refused now, not when the step ends
        return 1

    @pipeline(components=[Chatty()])
    def p() -> None:
        make()

    with caplog.at_level(logging.WARNING):
        assert p().status == "completed"
    assert "stack component 'chatty' failed to give pipeline run metadata" in caplog.text
    assert "2,000 keys make an event" in caplog.text
    assert published.metadata == []


def test_a_surrogate_str_is_refused_naming_the_key(published: Published) -> None:
    with pytest.raises(ValueError, match=r"metadata 'name': .*lone surrogate"):
        log_metadata({"ok": 1, "name": "caf\udce9"}, run_id_name_or_prefix="r")
    with pytest.raises(ValueError, match=r"metadata 'rows': .*lone surrogate"):
        log_metadata({"rows": [("x", {"f": "\ud800"})]}, step_id=ID)
    assert published.bodies == []


def test_the_depth_limit_comes_from_the_settings(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="'tree': the value is nested more than 64 levels deep"):
        log_metadata({"tree": deep}, step_id=ID)
    monkeypatch.setenv("METASTREAM_MAX_DEPTH", "100")
    emit.settings.cache_clear()
    log_metadata({"tree": deep}, step_id=ID)
    assert len(published.metadata) == 1
