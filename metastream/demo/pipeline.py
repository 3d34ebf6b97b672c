"""The example pipeline ``metastream demo`` runs: a small churn classifier, in pure Python.

Read it as an example of metastream's pipeline API; it needs nothing beyond
metastream (no numpy, no pandas), and is deterministic for a given seed.

* ``load_data`` makes a synthetic customer table (``tenure_months``,
  ``monthly_spend`` and the label ``churned``), writes it as CSV where the
  step's output is kept, and describes it: data statistics on the output
  artifact (``infer_artifact=True``: row count, columns, a ``DType`` per
  column, the file's ``StorageSize``, a ``Uri`` for its source and its
  ``Path``), and a ``dataset`` card on the pipeline run.
* ``train_model`` fits a logistic regression by full-batch gradient descent:
  the loss of every epoch is logged to the step (the latest value is the
  final loss, ``metastream history`` shows them all), the hyperparameters
  as a card, on the step and on the model version (``infer_model=True``).
* ``evaluate_model`` scores the held-out rows: a ``metrics`` card (accuracy,
  precision, recall, f1, log loss) on the step and on the model version, and
  the confusion matrix on the step.
* The pipeline's model is ``demo-classifier``: each run makes a new version
  of it (``metastream demo`` names the versions after its runs).
* Stack components add the environment (Python, platform, host, package
  versions) to the run, and each step's wall time and peak memory
  (a ``resources`` card) to the step.
"""

from __future__ import annotations

import csv
import math
import random
import resource
import sys
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated

from metastream import (
    DType,
    MetadataType,
    Model,
    Path,
    StackComponent,
    StepRunInfo,
    StorageSize,
    Uri,
    get_step_context,
    log_metadata,
    pipeline,
    step,
)
from metastream.pipelines import EnvironmentComponent

PIPELINE_NAME = "demo_training"
MODEL_NAME = "demo-classifier"
DATASET_ARTIFACT = "demo-dataset"
FEATURES = ("tenure_months", "monthly_spend")
LABEL = "churned"
COLUMN_TYPES = {"tenure_months": "int64", "monthly_spend": "float64", "churned": "int64"}


@dataclass(frozen=True)
class Dataset:
    """Rows of ``(tenure_months, monthly_spend, churned)``; the first ``train_rows`` train."""

    rows: list[tuple[int, float, int]]
    train_rows: int

    @property
    def train(self) -> list[tuple[int, float, int]]:
        return self.rows[: self.train_rows]

    @property
    def test(self) -> list[tuple[int, float, int]]:
        return self.rows[self.train_rows :]


@dataclass(frozen=True)
class Classifier:
    """Logistic regression on standardised features."""

    weights: tuple[float, float]
    bias: float
    means: tuple[float, float]
    scales: tuple[float, float]

    def probability(self, tenure_months: float, monthly_spend: float) -> float:
        z = self.bias
        for weight, value, mean, scale in zip(
            self.weights, (tenure_months, monthly_spend), self.means, self.scales, strict=True
        ):
            z += weight * (value - mean) / scale
        return _sigmoid(z)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _log_loss(probabilities: list[float], labels: list[int]) -> float:
    eps = 1e-12
    total = 0.0
    for p, y in zip(probabilities, labels, strict=True):
        p = min(max(p, eps), 1 - eps)
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(labels)


def _mean_and_scale(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(variance) or 1.0


def synthetic_rows(count: int, seed: int) -> list[tuple[int, float, int]]:
    """Customers: churners have shorter tenure and higher bills, with plenty of overlap."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        churned = 1 if rng.random() < 0.3 else 0
        tenure = rng.gauss(12, 10) if churned else rng.gauss(34, 16)
        spend = rng.gauss(78, 18) if churned else rng.gauss(60, 18)
        rows.append((int(min(72, max(1, round(tenure)))), round(max(10.0, spend), 2), churned))
    return rows


# -- stack components ----------------------------------------------------------------------


class StepResources(StackComponent):
    """What each step cost: its wall time and the process's peak memory when it ended.

    A component sees a step only once it has run (``StepRunInfo``), so what it
    can report is what the step left behind; an experiment tracker or a
    profiler would plug in the same way.
    """

    name = "step_resources"

    def get_step_run_metadata(self, info: StepRunInfo) -> dict[str, MetadataType]:
        return {
            "resources": {
                "wall_seconds": round((info.finished - info.started).total_seconds(), 4),
                "peak_memory": StorageSize(_peak_rss_bytes()),
            }
        }


def _peak_rss_bytes() -> int:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# -- steps ---------------------------------------------------------------------------------


@step
def load_data(
    rows: int = 800, test_fraction: float = 0.25, seed: int = 42
) -> Annotated[Dataset, "demo-dataset"]:
    """Make the table, write it as CSV, and describe it."""
    data = synthetic_rows(rows, seed)
    context = get_step_context()
    directory = FsPath(context.get_output_artifact_uri(DATASET_ARTIFACT))
    directory.mkdir(parents=True, exist_ok=True)
    csv_file = directory / "customers.csv"
    with csv_file.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, LABEL])
        writer.writerows(data)
    train_rows = round(rows * (1 - test_fraction))
    churn_rate = sum(r[2] for r in data) / rows
    source = Uri(f"synthetic://customers?rows={rows}&seed={seed}")

    log_metadata(  # to the output artifact, saved with it when the step returns
        {
            "row_count": rows,
            "columns": [*FEATURES, LABEL],
            "dtypes": {column: DType(dtype) for column, dtype in COLUMN_TYPES.items()},
            "storage_size": StorageSize(csv_file.stat().st_size),
            "source": source,
            "path": Path(str(csv_file)),
            "churn_rate": round(churn_rate, 4),
        },
        infer_artifact=True,
    )
    log_metadata(  # to the pipeline run, named from inside the step
        {
            "dataset": {
                "name": DATASET_ARTIFACT,
                "source": source,
                "rows": rows,
                "train_rows": train_rows,
                "test_rows": rows - train_rows,
                "churn_rate": round(churn_rate, 4),
            }
        },
        run_id_name_or_prefix=context.pipeline_run.id,
    )
    return Dataset(data, train_rows)


@step
def train_model(
    dataset: Dataset, learning_rate: float = 0.1, epochs: int = 30
) -> Annotated[Classifier, "demo-classifier-weights"]:
    """Logistic regression by full-batch gradient descent; the loss of every epoch is logged."""
    train = dataset.train
    columns = [[float(r[0]) for r in train], [float(r[1]) for r in train]]
    stats = [_mean_and_scale(c) for c in columns]
    x = [
        [(v - mean) / scale for v in column]
        for column, (mean, scale) in zip(columns, stats, strict=True)
    ]
    y = [r[2] for r in train]
    n = len(y)
    w = [0.0, 0.0]
    b = 0.0
    loss = math.nan
    for _ in range(epochs):
        p = [_sigmoid(w[0] * x[0][i] + w[1] * x[1][i] + b) for i in range(n)]
        loss = _log_loss(p, y)
        log_metadata({"loss": round(loss, 6)})  # the latest is the final loss; history has all
        errors = [p[i] - y[i] for i in range(n)]
        w[0] -= learning_rate * sum(e * v for e, v in zip(errors, x[0], strict=True)) / n
        w[1] -= learning_rate * sum(e * v for e, v in zip(errors, x[1], strict=True)) / n
        b -= learning_rate * sum(errors) / n

    hyperparameters: dict[str, MetadataType] = {
        "learning_rate": learning_rate,
        "epochs": epochs,
        "optimizer": "full-batch gradient descent",
    }
    log_metadata({"hyperparameters": hyperparameters, "train_rows": n})
    log_metadata(
        {
            "hyperparameters": hyperparameters,
            "coefficients": {
                FEATURES[0]: round(w[0], 6),
                FEATURES[1]: round(w[1], 6),
                "intercept": round(b, 6),
            },
            "train_loss": round(loss, 6),
        },
        infer_model=True,
    )
    return Classifier(
        weights=(w[0], w[1]),
        bias=b,
        means=(stats[0][0], stats[1][0]),
        scales=(stats[0][1], stats[1][1]),
    )


@step
def evaluate_model(classifier: Classifier, dataset: Dataset, threshold: float = 0.5) -> None:
    """Score the held-out rows; the metrics go to the step and to the model version."""
    test = dataset.test
    probabilities = [classifier.probability(r[0], r[1]) for r in test]
    labels = [r[2] for r in test]
    predicted = [1 if p >= threshold else 0 for p in probabilities]
    pairs = list(zip(predicted, labels, strict=True))
    tp = pairs.count((1, 1))
    fp = pairs.count((1, 0))
    fn = pairs.count((0, 1))
    tn = pairs.count((0, 0))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics: dict[str, MetadataType] = {
        "accuracy": round((tp + tn) / len(test), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "log_loss": round(_log_loss(probabilities, labels), 4),
    }
    log_metadata(
        {
            "metrics": metrics,
            "confusion_matrix": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "threshold": threshold,
        }
    )
    log_metadata({"metrics": metrics}, infer_model=True)


# -- the pipeline --------------------------------------------------------------------------


@pipeline(
    name=PIPELINE_NAME,
    model=Model(MODEL_NAME, description="churn classifier (logistic regression)"),
    components=[
        EnvironmentComponent(packages=("metastream", "msgspec", "redis")),
        StepResources(),
    ],
)
def training_pipeline(learning_rate: float = 0.1, epochs: int = 30, seed: int = 42) -> None:
    """Load the data, train a classifier on it, and evaluate the classifier."""
    dataset = load_data(seed=seed)
    classifier = train_model(dataset, learning_rate=learning_rate, epochs=epochs)
    evaluate_model(classifier, dataset)
