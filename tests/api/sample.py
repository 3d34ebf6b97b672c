"""A real SQLite database of a few runs, built by the projections from events."""

from __future__ import annotations

import asyncio
import datetime
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metastream.projections import Store
from metastream.schemas import DType, Event, StorageSize, Uri
from metastream.schemas import Path as MetaPath
from tests.events import Pipeline, artifact, by_id, incoming, logged, model

XSS_KEY = "<img src=x onerror=\"window.__xss='key'\">"
XSS_VALUE = "<script>window.__xss='value'</script>"
XSS_URI = "javascript:window.__xss='uri'"


@dataclass
class Sample:
    path: Path
    runs: list[Pipeline] = field(default_factory=list)
    artifact_id: Any = None
    model_id: Any = None


def ingest(path: Path, events: list[Event]) -> None:
    async def go() -> None:
        store = await Store.open(path)
        try:
            await store.ingest(incoming(*events))
        finally:
            await store.close()

    # in a thread of its own: Playwright's sync API keeps an event loop running on this one
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # re-raised below, in the caller's thread
            failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if failures:
        raise failures[0]


def build(path: Path, runs: int = 3) -> Sample:
    """``runs`` runs of pipeline ``training`` (and one of ``etl``), with cards and special types."""
    sample = Sample(path)
    events: list[Event] = []
    for i in range(runs):
        p = Pipeline(f"run-{i}", "training")
        sample.runs.append(p)
        events += [
            p.started(),
            p.on_run(
                learning_rate=0.1 * (i + 1),
                epochs=10,
                optimizer="adam" if i % 2 == 0 else "sgd",
                git={"commit": f"abc{i}", "dirty": False},
            ),
            p.step("load"),
            p.on_step(
                "load",
                dataset={
                    "source": Uri("https://example.com/data.csv"),
                    "local": MetaPath("/data/train.csv"),
                    "size": StorageSize(1_572_864),
                    "dtype": DType("float32"),
                },
                rows=1000 + i,
            ),
            p.step_done("load"),
            p.step("train"),
            *(p.on_step("train", loss=1.0 / (epoch + 1) + 0.01 * i) for epoch in range(4)),
            p.on_step("train", accuracy=0.8 + 0.02 * i, loss=0.2 - 0.01 * i, shape=(3, 4)),
            p.step_done("train", "failed" if i == runs - 1 else "completed"),
            p.finished("failed" if i == runs - 1 else "completed"),
        ]
    data = artifact("dataset", run=sample.runs[0])
    sample.artifact_id = data.artifact_version_id
    events += [data, logged(by_id("artifact_version", data.artifact_version_id), rows=1000)]
    m = model("classifier", "1")
    sample.model_id = m.model_version_id
    events += [m, logged(by_id("model_version", m.model_version_id), auc=0.91)]
    etl = Pipeline("etl-nightly", "etl")
    events += [
        etl.started(),
        etl.on_run(when=datetime.datetime(2026, 12, 1, 12, 0)),
        etl.finished(),
    ]
    sample.runs.append(etl)
    ingest(path, events)
    return sample


def log_to_run(sample: Sample, run: Pipeline, **metadata: Any) -> None:
    ingest(sample.path, [run.on_run(**metadata)])
