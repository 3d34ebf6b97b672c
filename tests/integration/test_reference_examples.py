"""The reference's examples, run through the real stack and read back with ``Client``.

Every code example of ``shared/seeds/000_4293a5ff96160dc4.txt`` (logging and
fetching metadata) is a test here, its code kept verbatim except for its
imports: ``from zenml import X``, ``from zenml.metadata.metadata_types
import X`` and ``from zenml.client import Client`` became ``from metastream
import ...`` (each test starts with the example's imports, changed, the
original ones in a comment above). What the examples take for granted is
defined around them: helper functions (``train_model``, ``transform``, ...), a
stand-in for a pandas ``DataFrame`` (pandas is not installed), a pipeline
that calls the example's steps, and the entities the "after execution"
examples name ("my_run_id", "fraud_detector" version "1.0.0", ...).
Placeholder ids ("step_uuid", "artifact_uuid", "model_version_uuid",
"pipeline_run_id") are replaced by the real ids, as a comment says at each.

The stack is real (``stack_fixture.real_stack``): ``log_metadata`` publishes
through the process-wide producer to a Redis stream, ``metastream consume``
runs as a process of its own and writes the database, ``Client`` reads it.

Also here: the stack component example of ``004_d3e7c00cd359278f.txt``,
reading your own writes, rejected references, logging while nothing is up
(the spool, then ``metastream up``), and the errors of the semantics table
that need a database to happen.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path as FsPath
from types import SimpleNamespace
from typing import Any

import pytest

import metastream
from metastream import (
    Client,
    MetadataType,
    Model,
    StackComponent,
    StepRunInfo,
    Uri,
    log_metadata,
    pipeline,
    step,
)
from metastream import config as metastream_config
from metastream.config import Settings
from metastream.errors import AmbiguousReference, EventRejected, ReferenceNotFound
from metastream.pipelines import emit
from metastream.producer import sender
from metastream.producer.records import read_spool
from metastream.schemas import (
    ArtifactVersionRegistered,
    MetadataLogged,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    decode_event,
)
from metastream.stack import local
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.streams import log_ids, wait_for_sync

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


# -- what the examples take for granted ------------------------------------------------


class Series:
    """A stand-in for a pandas Series: ``.sum()``."""

    def __init__(self, values: list[int]) -> None:
        self.values = values

    def sum(self) -> int:
        return sum(self.values)


class DataFrame:
    """A stand-in for a pandas DataFrame: ``len()``, ``.columns``, ``.memory_usage()``."""

    def __init__(self, data: dict[str, list[float]]) -> None:
        self.data = data

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __len__(self) -> int:
        return len(next(iter(self.data.values()), []))

    def memory_usage(self) -> Series:
        return Series([8 * len(values) for values in self.data.values()])

    def rows(self, start: int, stop: int) -> DataFrame:
        return DataFrame({name: values[start:stop] for name, values in self.data.items()})


def raw_frame() -> DataFrame:
    return DataFrame(
        {
            "age": [float(20 + i) for i in range(10)],
            "income": [1000.0 * i for i in range(10)],
            "score": [float(i % 3) for i in range(10)],
        }
    )


class Classifier:
    """A stand-in for an sklearn estimator: ``get_params()``."""

    def __init__(self, max_depth: int = 5) -> None:
        self.max_depth = max_depth

    def get_params(self) -> dict[str, Any]:
        return {"max_depth": self.max_depth, "criterion": "gini"}


def train_model(data: DataFrame) -> Classifier:
    return Classifier(max_depth=len(data.columns))


# -- Logging Metadata ------------------------------------------------------------------


def test_basic_logging_goes_to_the_step_it_is_called_in(real_stack: RealStack) -> None:
    # from zenml import log_metadata
    from metastream import log_metadata

    @step
    def evaluate() -> None:
        # The example: without a target, the call belongs inside a step.
        # Basic metadata logging
        log_metadata(
            metadata={"accuracy": 0.95, "precision": 0.92},
            # Additional parameters to specify where to log the metadata
        )

    evaluate()  # a step called on its own is recorded as a one-step run
    real_stack.sync()

    (listed,) = real_stack.client.list_pipeline_runs(pipeline_name="evaluate")
    run = real_stack.client.get_pipeline_run(listed.id)
    assert run.status == "completed"
    assert run.steps["evaluate"].run_metadata == {"accuracy": 0.95, "precision": 0.92}
    assert run.run_metadata == {"evaluate::accuracy": 0.95, "evaluate::precision": 0.92}

    # Outside a step the same call names no target: an error, and nothing is published.
    length = real_stack.stream_length()
    with pytest.raises(ValueError, match="outside a step without saying what the metadata is for"):
        log_metadata(metadata={"accuracy": 0.95, "precision": 0.92})
    real_stack.sync()
    assert real_stack.stream_length() == length


def test_attaching_metadata_to_steps(real_stack: RealStack) -> None:
    # from zenml import step, log_metadata
    from metastream import log_metadata, step

    def evaluate_model(model: Classifier, data: DataFrame) -> float:
        return 0.93

    # Method 1: Within a step (automatically associates with current step)
    @step
    def train_model_step(data):
        model = train_model(data)
        accuracy = evaluate_model(model, data)

        # Log metrics directly within the step
        log_metadata(
            metadata={"evaluation_metrics": {"accuracy": accuracy}},
        )

        return model

    @pipeline(run_name="my_run_id")
    def training() -> None:
        train_model_step(raw_frame())

    assert training().status == "completed"

    # Method 2: Targeting a specific step after execution
    log_metadata(
        metadata={"post_analysis": {"feature_importance": [0.2, 0.5, 0.3]}},
        step_name="train_model_step",
        run_id_name_or_prefix="my_run_id",
    )

    # Alternative: Using step_id -- the placeholder "step_uuid" is the step's real id.
    real_stack.sync()
    step_uuid = str(real_stack.client.get_pipeline_run("my_run_id").steps["train_model_step"].id)
    log_metadata(
        metadata={"post_analysis": {"feature_importance": [0.2, 0.5, 0.3]}},
        step_id=step_uuid,
    )
    real_stack.sync()

    client = real_stack.client
    run = client.get_pipeline_run("my_run_id")
    trained = run.steps["train_model_step"]
    assert trained.status == "completed"
    assert trained.run_metadata == {
        "evaluation_metrics": {"accuracy": 0.93},
        "post_analysis": {"feature_importance": [0.2, 0.5, 0.3]},
    }
    # Both after-execution forms reached the step (the same value, logged twice).
    history = client.get_metadata_history(trained, "post_analysis")
    assert [h.value for h in history] == [{"feature_importance": [0.2, 0.5, 0.3]}] * 2
    # The run holds no key of its own, and every step key as step_name::key.
    assert client.get_pipeline_run("my_run_id", rollups=False).run_metadata == {}
    assert run.run_metadata == {
        "train_model_step::evaluation_metrics": {"accuracy": 0.93},
        "train_model_step::post_analysis": {"feature_importance": [0.2, 0.5, 0.3]},
    }


def test_attaching_metadata_to_pipeline_runs(real_stack: RealStack) -> None:
    # from zenml import pipeline, step, log_metadata
    from metastream import log_metadata, pipeline, step

    def get_git_hash() -> str:
        return "3f2a9c1"

    def get_env_info() -> dict[str, str]:
        return {"python": "3.12", "platform": "linux"}

    # Method 1: Within a step (logs to the current run)
    @step
    def log_run_info_step():
        # Get some runtime information
        git_commit = get_git_hash()
        environment = get_env_info()

        # Log to the current pipeline run
        log_metadata(
            metadata={
                "git_info": {"commit": git_commit},
                "environment": environment,
            },
        )

    @pipeline(run_name="my_run_id")
    def training() -> None:
        log_run_info_step()
        log_run_info_step()  # a second invocation: log_run_info_step_2, the same keys

    assert training().status == "completed"

    # Method 2: Manually targeting a specific run
    log_metadata(
        metadata={"post_run_analysis": {"total_training_time": 350}},
        run_id_name_or_prefix="my_run_id",
    )
    real_stack.sync()

    client = real_stack.client
    run = client.get_pipeline_run("my_run_id")
    logged_in_step = {"git_info": {"commit": "3f2a9c1"}, "environment": get_env_info()}
    # Inside a step the metadata belongs to the step; the run shows it as step_name::key,
    # so several steps can use the same key.
    assert run.steps["log_run_info_step"].run_metadata == logged_in_step
    assert run.steps["log_run_info_step_2"].run_metadata == logged_in_step
    assert client.get_pipeline_run("my_run_id", rollups=False).run_metadata == {
        "post_run_analysis": {"total_training_time": 350}
    }
    assert run.run_metadata == {
        "post_run_analysis": {"total_training_time": 350},
        "log_run_info_step::git_info": {"commit": "3f2a9c1"},
        "log_run_info_step::environment": get_env_info(),
        "log_run_info_step_2::git_info": {"commit": "3f2a9c1"},
        "log_run_info_step_2::environment": get_env_info(),
    }


def test_attaching_metadata_to_artifacts(real_stack: RealStack) -> None:
    # from zenml import step, log_metadata
    # from zenml.metadata.metadata_types import StorageSize
    from metastream import StorageSize, log_metadata, step

    def transform(raw_data: DataFrame) -> DataFrame:
        return DataFrame({**raw_data.data, "income_per_age": [1.0] * len(raw_data)})

    def split_data(data: DataFrame) -> tuple[DataFrame, DataFrame]:
        return data.rows(0, 8), data.rows(8, len(data))

    # Method 1: Within a step for an output artifact
    @step
    def process_data_step(raw_data):
        processed_data = transform(raw_data)

        # Log metadata for the output artifact (when step has single output)
        log_metadata(
            metadata={
                "data_stats": {
                    "row_count": len(processed_data),
                    "columns": list(processed_data.columns),
                    "storage_size": StorageSize(processed_data.memory_usage().sum()),
                }
            },
            infer_artifact=True,  # Automatically target the output artifact
        )

        return processed_data

    # Method 2: For a step with multiple outputs
    @step
    def split_data_step(data):
        train, test = split_data(data)

        # Log metadata for specific output by name
        log_metadata(
            metadata={"split_info": {"train_size": len(train)}},
            artifact_name="output_0",  # Name of the specific output
            infer_artifact=True,
        )

        return train, test

    @pipeline
    def data_pipeline() -> None:
        processed = process_data_step(raw_frame())
        split_data_step(processed)

    run = data_pipeline()
    assert run.status == "completed"
    # The artifact version the next two methods name, registered by another producer.
    real_stack.register_artifact_version("processed_data", "20230615")
    real_stack.sync()

    # Method 3: Explicitly target an artifact by name and version
    log_metadata(
        metadata={"validation_results": {"distribution_shift": 0.03}},
        artifact_name="processed_data",
        artifact_version="20230615",
    )

    # Method 4: Target by artifact version ID -- "artifact_uuid" is the real id.
    artifact_uuid = str(real_stack.client.get_artifact_version("processed_data", "20230615").id)
    log_metadata(
        metadata={"validation_results": {"distribution_shift": 0.03}},
        artifact_version_id=artifact_uuid,
    )
    real_stack.sync()

    client = real_stack.client
    view = client.get_pipeline_run(run.id)
    processed = client.get_artifact_version("data_pipeline::process_data_step::output")
    assert (processed.version, processed.run_id) == ("1", run.id)
    assert processed.step_id == view.steps["process_data_step"].id
    stats = processed.run_metadata["data_stats"]
    assert stats == {
        "row_count": 10,
        "columns": ["age", "income", "score", "income_per_age"],
        "storage_size": 4 * 8 * 10,
    }
    assert type(stats["storage_size"]) is StorageSize
    # On the artifact version, not on the step that produced it.
    assert view.steps["process_data_step"].run_metadata == {}

    train = client.get_artifact_version("data_pipeline::split_data_step::output_0")
    test = client.get_artifact_version("data_pipeline::split_data_step::output_1")
    assert train.run_metadata == {"split_info": {"train_size": 8}}
    assert test.run_metadata == {}

    validated = client.get_artifact_version("processed_data", "20230615")
    assert validated.run_metadata == {"validation_results": {"distribution_shift": 0.03}}
    assert len(client.get_metadata_history(validated, "validation_results")) == 2


def test_attaching_metadata_to_models(real_stack: RealStack) -> None:
    # from zenml import step, log_metadata
    from metastream import log_metadata, step

    def evaluate_model(model: Classifier, data: DataFrame) -> dict[str, float]:
        return {"accuracy": 0.97, "recall": 0.81}

    # Method 1: Within a step that produces a model
    @step
    def train_model_step(data):
        model = train_model(data)
        metrics = evaluate_model(model, data)

        # Log metadata to the model
        log_metadata(
            metadata={
                "evaluation_metrics": metrics,
                "hyperparameters": model.get_params(),
            },
            infer_model=True,  # Automatically target the model associated with this step
        )

        return model

    @pipeline(model=Model("fraud_detector", "1.0.0"))
    def training() -> None:
        train_model_step(raw_frame())

    run = training()
    assert run.status == "completed"

    # Method 2: Explicitly target a model by name and version
    log_metadata(
        metadata={"deployment_info": {"endpoint": "api.example.com/model"}},
        model_name="fraud_detector",
        model_version="1.0.0",
    )

    # Method 3: Target by model version ID -- "model_version_uuid" is the real id.
    real_stack.sync()
    model_version_uuid = str(real_stack.client.get_model_version("fraud_detector", "1.0.0").id)
    log_metadata(
        metadata={"deployment_info": {"endpoint": "api.example.com/model"}},
        model_version_id=model_version_uuid,
    )
    real_stack.sync()

    client = real_stack.client
    model = client.get_model_version("fraud_detector", "1.0.0")
    assert model.run_id == run.id
    assert model.run_metadata == {
        "evaluation_metrics": {"accuracy": 0.97, "recall": 0.81},
        "hyperparameters": {"max_depth": 3, "criterion": "gini"},
        "deployment_info": {"endpoint": "api.example.com/model"},
    }
    assert len(client.get_metadata_history(model, "deployment_info")) == 2
    assert client.get_model_version("fraud_detector").id == model.id  # the latest version
    # infer_model logs to the model version only.
    assert client.get_pipeline_run(run.id).steps["train_model_step"].run_metadata == {}


# -- Special Metadata Types --------------------------------------------------------------


def test_special_metadata_types_come_back_as_themselves(real_stack: RealStack) -> None:
    # from zenml import log_metadata
    # from zenml.metadata.metadata_types import StorageSize, DType, Uri, Path
    from metastream import DType, Path, StorageSize, Uri, log_metadata

    @step
    def load_dataset():
        # The example (infer_artifact: inside a step with one output).
        log_metadata(
            metadata={
                "dataset_source": Uri("gs://my-bucket/datasets/source.csv"),  # External URI
                "preprocessing_script": Path("/scripts/preprocess.py"),  # File path
                "column_types": {
                    "age": DType("int"),  # Data type
                    "income": DType("float"),
                    "score": DType("int"),
                },
                "processed_data_size": StorageSize(2500000),  # Size in bytes
            },
            infer_artifact=True,
        )
        return raw_frame()

    @pipeline
    def loading() -> None:
        load_dataset()

    assert loading().status == "completed"
    real_stack.sync()

    metadata = real_stack.client.get_artifact_version("loading::load_dataset::output").run_metadata
    assert metadata == {
        "dataset_source": "gs://my-bucket/datasets/source.csv",
        "preprocessing_script": "/scripts/preprocess.py",
        "column_types": {"age": "int", "income": "float", "score": "int"},
        "processed_data_size": 2500000,
    }
    assert type(metadata["dataset_source"]) is Uri
    assert type(metadata["preprocessing_script"]) is Path
    assert {type(t) for t in metadata["column_types"].values()} == {DType}
    assert type(metadata["processed_data_size"]) is StorageSize


def test_cards_are_dicts_of_dicts(real_stack: RealStack) -> None:
    # from zenml import log_metadata
    # from zenml.metadata.metadata_types import StorageSize
    from metastream import StorageSize, log_metadata

    # The artifact version the example names, registered by another producer.
    real_stack.register_artifact_version("my_artifact", "version")
    real_stack.sync()

    # The example.
    log_metadata(
        metadata={
            "model_metrics": {  # First card in the dashboard
                "accuracy": 0.95,
                "precision": 0.92,
                "recall": 0.90,
            },
            "data_details": {  # Second card in the dashboard
                "dataset_size": StorageSize(1500000),
                "feature_columns": ["age", "income", "score"],
            },
        },
        artifact_name="my_artifact",
        artifact_version="version",
    )
    real_stack.sync()

    artifact = real_stack.client.get_artifact_version("my_artifact", "version")
    cards = artifact.run_metadata
    assert cards == {
        "model_metrics": {"accuracy": 0.95, "precision": 0.92, "recall": 0.90},
        "data_details": {"dataset_size": 1500000, "feature_columns": ["age", "income", "score"]},
    }
    assert type(cards["data_details"]["dataset_size"]) is StorageSize

    # Logging to a card again adds to it: later fields win, the others stay.
    handle = log_metadata(
        metadata={"model_metrics": {"recall": 0.91, "f1": 0.93}},
        artifact_name="my_artifact",
        artifact_version="version",
    )
    real_stack.client.wait_for(handle)
    merged = real_stack.client.get_artifact_version("my_artifact", "version").run_metadata
    assert merged["model_metrics"] == {
        "accuracy": 0.95,
        "precision": 0.92,
        "recall": 0.91,
        "f1": 0.93,
    }
    assert merged["data_details"] == cards["data_details"]


# -- Fetching Metadata ---------------------------------------------------------------------


def _log_what_the_fetch_example_reads(stack: RealStack) -> uuid.UUID:
    """A run with a step "step_name", artifact "artifact_name" and model "model_name" (both
    version "version"), each with several values of "metadata_key"; the run's id."""
    stack.register_artifact_version("artifact_name", "version")

    @step(name="step_name")
    def first_step() -> None:
        log_metadata({"metadata_key": "step, first"})
        log_metadata({"metadata_key": "model, first"}, infer_model=True)
        log_metadata({"metadata_key": "step, latest"})
        log_metadata({"metadata_key": "model, latest"}, infer_model=True)

    @pipeline(model=Model("model_name", "version"))
    def fetched() -> None:
        first_step()

    run = fetched()
    log_metadata({"metadata_key": "run, first"}, run_id_name_or_prefix=run.name)
    log_metadata({"metadata_key": "run, latest"}, run_id_name_or_prefix=run.name)
    stack.sync()
    log_metadata(
        {"metadata_key": "artifact, first"},
        artifact_name="artifact_name",
        artifact_version="version",
    )
    log_metadata(
        {"metadata_key": "artifact, latest"},
        artifact_name="artifact_name",
        artifact_version="version",
    )
    stack.sync()
    return run.id


def test_fetching_metadata_gives_the_latest_value_of_each_key(real_stack: RealStack) -> None:
    # from zenml.client import Client
    from metastream import Client

    # The placeholder "pipeline_run_id" is the run's real id.
    pipeline_run_id = str(_log_what_the_fetch_example_reads(real_stack))

    # The example.
    client = Client()

    # Get metadata from a step
    step = client.get_pipeline_run(pipeline_run_id).steps["step_name"]
    step_metadata = step.run_metadata["metadata_key"]

    # Get metadata from a run
    run = client.get_pipeline_run(pipeline_run_id)
    run_metadata = run.run_metadata["metadata_key"]

    # Get metadata from an artifact
    artifact = client.get_artifact_version("artifact_name", "version")
    artifact_metadata = artifact.run_metadata["metadata_key"]

    # Get metadata from a model
    model = client.get_model_version("model_name", "version")
    model_metadata = model.run_metadata["metadata_key"]

    try:
        # "the returned value will always reflect the latest entry for that key"
        assert step_metadata == "step, latest"
        assert run_metadata == "run, latest"
        assert artifact_metadata == "artifact, latest"
        assert model_metadata == "model, latest"
        assert run.run_metadata["step_name::metadata_key"] == "step, latest"
        for entity, what in (
            (step, "step"),
            (run, "run"),
            (artifact, "artifact"),
            (model, "model"),
        ):
            history = client.get_metadata_history(entity, "metadata_key")
            assert [h.value for h in history] == [f"{what}, first", f"{what}, latest"]
        assert client.db == real_stack.settings.db  # Client() found the database on its own
    finally:
        client.close()


def test_the_step_context(real_stack: RealStack, capsys: pytest.CaptureFixture[str]) -> None:
    # from zenml import step, get_step_context
    from metastream import get_step_context, step

    @step
    def my_step():
        # Get the step context
        context = get_step_context()

        # Access context information
        pipeline_name = context.pipeline.name
        run_name = context.pipeline_run.name
        step_name = context.step_run.name

        # Get information about output artifacts
        output_uri = context.get_output_artifact_uri()  # noqa: F841
        materializer = context.get_output_materializer()  # noqa: F841

        # Use the context information
        print(f"Executing step {step_name} in pipeline {pipeline_name}, run {run_name}")

    @pipeline
    def my_pipeline() -> None:
        my_step()

    # metastream stores no artifacts: get_output_materializer() raises, as documented.
    with pytest.raises(NotImplementedError, match="outputs have no materializers") as raised:
        my_pipeline()
    # Everything before that line worked: the step's variables when it raised.
    (frame,) = [entry.locals for entry in raised.traceback if entry.name == "my_step"]
    assert frame["pipeline_name"] == "my_pipeline"
    assert frame["run_name"].startswith("my_pipeline-")
    assert frame["step_name"] == "my_step"
    assert "materializer" not in frame
    assert capsys.readouterr().out == ""
    real_stack.sync()

    run = real_stack.client.get_pipeline_run(frame["run_name"])
    assert frame["output_uri"] == str(
        real_stack.settings.home / "artifacts" / "my_pipeline" / run.name / "my_step" / "output"
    )
    assert (run.pipeline_name, run.status) == ("my_pipeline", "failed")
    failed = run.steps["my_step"]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("NotImplementedError: ")


def test_the_pipeline_context_and_steps_made_in_a_loop(real_stack: RealStack) -> None:
    # from zenml import pipeline, get_pipeline_context
    from metastream import get_pipeline_context, pipeline

    @step
    def train_model(model_package: str, model_class: str) -> None:
        log_metadata({"estimator": f"{model_package}.{model_class}"})

    # The example.
    @pipeline(
        extra={
            "model_configs": [
                ("sklearn.tree", "DecisionTreeClassifier"),
                ("sklearn.ensemble", "RandomForestClassifier"),
            ]
        }
    )
    def my_pipeline():
        # Get the pipeline context
        context = get_pipeline_context()

        # Access the configuration
        model_configs = context.extra["model_configs"]

        # Use the configuration to dynamically create steps
        for i, (model_package, model_class) in enumerate(model_configs):
            train_model(model_package=model_package, model_class=model_class, id=f"train_model_{i}")

    run = my_pipeline()
    assert run.status == "completed"
    real_stack.sync()

    view = real_stack.client.get_pipeline_run(run.id)
    assert list(view.steps) == ["train_model_0", "train_model_1"]
    assert view.steps["train_model_0"].run_metadata == {
        "estimator": "sklearn.tree.DecisionTreeClassifier"
    }
    assert view.run_metadata == {
        "train_model_0::estimator": "sklearn.tree.DecisionTreeClassifier",
        "train_model_1::estimator": "sklearn.ensemble.RandomForestClassifier",
    }


# -- 004: metadata from stack components ----------------------------------------------------


class BaseExperimentTracker(StackComponent):
    """The reference's base class of experiment trackers: a stack component."""


mlflow = SimpleNamespace(  # what the example uses of mlflow: the active run's ids
    active_run=lambda: SimpleNamespace(
        info=SimpleNamespace(run_id="9b2f0c6e4d", experiment_id="17")
    )
)


class MLFlowExperimentTracker(BaseExperimentTracker):
    """The reference's example, with ``dict`` for ``Dict``."""

    def get_tracking_uri(self) -> str:
        return "http://mlflow.internal:5000"

    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        return {
            "mlflow_tracking_uri": Uri(self.get_tracking_uri()),
        }

    def get_step_run_metadata(self, info: StepRunInfo) -> dict[str, MetadataType]:
        return {
            "mlflow_run_id": mlflow.active_run().info.run_id,
            "mlflow_experiment_id": mlflow.active_run().info.experiment_id,
        }


def test_stack_component_metadata_on_the_run_and_every_step(real_stack: RealStack) -> None:
    tracker = MLFlowExperimentTracker()

    @step
    def train() -> None:
        log_metadata({"loss": 0.1})

    @step
    def evaluate() -> None:
        raise RuntimeError("no evaluation data")

    @pipeline(components=[tracker], run_name="tracked")
    def training() -> None:
        train()
        evaluate()

    with pytest.raises(RuntimeError, match="no evaluation data"):
        training()
    real_stack.sync()

    client = real_stack.client
    run = client.get_pipeline_run("tracked")
    assert run.status == "failed"
    own = client.get_pipeline_run("tracked", rollups=False).run_metadata
    assert own == {"mlflow_tracking_uri": "http://mlflow.internal:5000"}
    assert type(own["mlflow_tracking_uri"]) is Uri
    tracked = {"mlflow_run_id": "9b2f0c6e4d", "mlflow_experiment_id": "17"}
    assert [(s.name, s.status) for s in run.steps.values()] == [
        ("train", "completed"),
        ("evaluate", "failed"),
    ]
    assert run.steps["train"].run_metadata == {"loss": 0.1, **tracked}
    assert run.steps["evaluate"].run_metadata == tracked
    assert run.run_metadata["evaluate::mlflow_run_id"] == "9b2f0c6e4d"

    # Each value is keyed to the component that gave it.
    assert tracker.name == "ml_flow_experiment_tracker"
    (uri,) = client.get_metadata_history(run, "mlflow_tracking_uri")
    assert uri.component == tracker.name
    for name in ("train", "evaluate"):
        (run_id,) = client.get_metadata_history(run.steps[name], "mlflow_run_id")
        assert run_id.component == tracker.name
    (loss,) = client.get_metadata_history(run.steps["train"], "loss")
    assert loss.component is None


# -- reading your own writes, rejected references ---------------------------------------------


def test_wait_for_a_handle_then_read_the_value(real_stack: RealStack) -> None:
    handles: dict[str, Any] = {}

    @step
    def prepare() -> list[int]:
        handles["artifact"] = log_metadata({"rows": 3}, infer_artifact=True)
        return [1, 2, 3]

    @pipeline
    def preparing() -> None:
        prepare()

    run = preparing()
    # No sync: the handle alone says when the value can be read.
    handle = log_metadata({"auc": 0.93}, run_id_name_or_prefix=run.name)
    real_stack.client.wait_for(handle, timeout=10)
    assert real_stack.client.get_pipeline_run(run.name).run_metadata["auc"] == 0.93

    real_stack.client.wait_for(handles["artifact"], timeout=10)
    artifact = real_stack.client.get_artifact_version("preparing::prepare::output")
    assert artifact.run_metadata == {"rows": 3}


def test_artifact_metadata_of_a_failing_step_is_rejected_when_waited_for(
    real_stack: RealStack, caplog: pytest.LogCaptureFixture
) -> None:
    handles = []

    @step
    def prepare() -> list[int]:
        handles.append(log_metadata({"rows": 3}, infer_artifact=True))
        raise OSError("disk full")

    @pipeline(run_name="failing-prepare")
    def preparing() -> None:
        prepare()

    with pytest.raises(OSError, match="disk full"):
        preparing()
    with pytest.raises(EventRejected, match=r"not saved: step 'prepare' failed \(OSError: disk"):
        real_stack.client.wait_for(handles[0], timeout=10)
    assert "artifact metadata logged in step 'prepare' (rows) was not saved" in caplog.text

    real_stack.sync()
    step_view = real_stack.client.get_pipeline_run("failing-prepare").steps["prepare"]
    assert (step_view.status, step_view.run_metadata) == ("failed", {})
    with pytest.raises(KeyError, match="preparing::prepare::output"):
        real_stack.client.get_artifact_version("preparing::prepare::output")


def test_an_ambiguous_prefix_is_refused_at_the_call_and_rejected_from_a_step(
    real_stack: RealStack,
) -> None:
    @step
    def noop() -> None:
        pass

    @pipeline
    def experiment() -> None:
        noop()

    experiment.with_options(run_name="exp-1")()
    experiment.with_options(run_name="exp-2")()
    real_stack.sync()
    length = real_stack.stream_length()

    # Outside a step the name is checked against the views: ValueError, listing both.
    with pytest.raises(ValueError, match="prefix 'exp' matches 2 pipeline runs") as raised:
        log_metadata({"note": "x"}, run_id_name_or_prefix="exp")
    assert isinstance(raised.value, AmbiguousReference)
    assert [c.split()[0] for c in raised.value.candidates] == ["exp-1", "exp-2"]
    real_stack.sync()
    assert real_stack.stream_length() == length  # nothing was published

    # Inside a step nothing is looked up: the event is published, and the consumer
    # records it as rejected, which wait_for reports.
    handles = []

    @step
    def annotate() -> None:
        handles.append(log_metadata({"note": "x"}, run_id_name_or_prefix="exp"))

    @pipeline(run_name="annotating")
    def annotating() -> None:
        annotate()

    annotating()
    with pytest.raises(EventRejected, match="prefix 'exp' matches 2 pipeline runs: exp-1 .*exp-2"):
        real_stack.client.wait_for(handles[0], timeout=10)
    for name in ("exp-1", "exp-2"):
        assert "note" not in real_stack.client.get_pipeline_run(name).run_metadata
    (rejection,) = [s for s in real_stack.client.reader.set_aside() if s.rejected]
    assert rejection.event_id.bytes == handles[0].event_ids[0]


# -- errors of the semantics table that need the views ------------------------------------------


def test_unknown_names_outside_a_step_raise_key_error_at_once(real_stack: RealStack) -> None:
    # A run another process created: only the views know it.
    run_id = uuid.uuid4()
    emit.publish(RunStarted(run_id=run_id, name="imported-run", pipeline_name="elsewhere"))
    emit.publish(StepStarted(step_id=uuid.uuid4(), run_id=run_id, name="train"))
    real_stack.sync()
    handle = log_metadata(
        {"checked": True}, step_name="train", run_id_name_or_prefix="imported-run"
    )
    real_stack.client.wait_for(handle)
    length = real_stack.stream_length()

    missing_run = f"no-such-run-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with pytest.raises(KeyError, match=f"no pipeline run with name, id or prefix '{missing_run}'"):
        log_metadata({"x": 1}, run_id_name_or_prefix=missing_run)
    with pytest.raises(KeyError, match="no step 'tain' in pipeline run 'imported-run'"):
        log_metadata({"x": 1}, step_name="tain", run_id_name_or_prefix="imported-run")
    # Each gets a second for the name to reach the views, no more.
    assert time.monotonic() - started < 5
    real_stack.sync()
    assert real_stack.stream_length() == length
    assert real_stack.client.get_pipeline_run("imported-run").run_metadata == {
        "train::checked": True
    }
    with pytest.raises(ReferenceNotFound):
        real_stack.client.get_pipeline_run(missing_run)


# -- nothing is up ----------------------------------------------------------------------------


@pytest.fixture
def offline_home(tmp_path: FsPath, clean_env: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh METASTREAM_HOME, no METASTREAM_REDIS_URL, no local stack; down afterwards."""
    clean_env.setenv("METASTREAM_HOME", str(tmp_path / "home"))
    clean_env.setattr(sender, "_warned_unreachable", False)
    settings = Settings.from_env()
    try:
        yield settings
    finally:
        producer = metastream.producer.default._default
        if producer is not None:
            producer.close(timeout=5)
        local.down(settings, say=lambda _: None)


def test_with_nothing_up_events_are_spooled_then_delivered_once_by_metastream_up(
    offline_home: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = offline_home
    assert metastream_config.redis_url(settings) is None

    @step
    def train() -> float:
        log_metadata({"loss": 0.25})
        log_metadata({"rows": 100}, infer_artifact=True)
        return 0.9

    @pipeline(run_name="offline")
    def training() -> None:
        train()

    with caplog.at_level(logging.WARNING):
        run = training()  # completes without Redis
        assert run.status == "completed"
        assert metastream.flush(5) is False  # nothing could be sent: it is all in the spool
        wait_for_sync(lambda: any(r.levelno >= logging.WARNING for r in caplog.records), 5)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    message = warning.getMessage()
    assert "Events are being spooled to" in message
    assert str(settings.spool_dir) in message
    assert "`metastream up`" in message

    spooled = [
        decode_event(body)
        for file in sorted(settings.spool_dir.glob("*.spool"))
        for body in read_spool(file)
    ]
    assert [type(e) for e in spooled] == [
        RunStarted,
        StepStarted,
        MetadataLogged,
        ArtifactVersionRegistered,
        MetadataLogged,
        StepFinished,
        RunFinished,
    ]
    assert not settings.db.exists()

    said: list[str] = []
    assert local.up(settings, detach=True, say=said.append)
    assert any("metastream is up" in line for line in said)
    # The producer looks for the stack about every second, then sends the spool.
    expected = sorted(e.event_id for e in spooled)
    wait_for_sync(lambda: sorted(log_ids(settings.db)) == expected, 30)
    wait_for_sync(lambda: not list(settings.spool_dir.glob("*.spool")), 30)
    assert metastream.flush(5)

    with Client(settings.db) as client:
        wait_for_sync(lambda: client.reader.applied_through() == len(expected), 10)
        view = client.get_pipeline_run("offline")
        assert view.status == "completed"
        assert view.steps["train"].run_metadata == {"loss": 0.25}
        artifact = client.get_artifact_version("training::train::output")
        assert artifact.run_metadata == {"rows": 100}
        assert len(client.get_metadata_history(view.steps["train"], "loss")) == 1
    ids = log_ids(settings.db)
    assert len(ids) == len(set(ids)) == len(expected)  # each event once
