"""A synthetic, realistic stream of events for benchmarks.

The shape: ``runs`` pipeline runs of ``steps`` steps each; every step logs
into ``keys`` distinct keys, most of them several times (metrics per epoch),
with the value mix of real pipelines: mostly floats and ints, some strings,
cards (dicts that merge), lists, and the special types. Runs carry their own
metadata, an artifact version and a model version. Events are made lazily,
so memory does not depend on how many are asked for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

from metastream.eventlog import Incoming
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    DType,
    Event,
    MetadataLogged,
    ModelVersionRegistered,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    StorageSize,
    Uri,
    decode_stored,
    encode_event,
    model_version_id_for,
    new_uuid,
    prepare_metadata,
)


def _value(rng: random.Random, key_index: int, epoch: int) -> Any:
    kind = key_index % 20
    if kind < 11:
        return rng.random()
    if kind < 14:
        return rng.randrange(1_000_000)
    if kind < 16:
        return f"value-{rng.randrange(1000)}"
    if kind < 18:  # a card that grows with each log
        return {f"field_{epoch % 4}": rng.random(), "epoch": epoch}
    if kind == 18:
        return [rng.random() for _ in range(4)]
    return {"source": Uri(f"s3://bucket/data/{key_index}.parquet"), "size": StorageSize(123456)}


def _metadata(rng: random.Random, index: int, keys: int, epoch: int) -> dict[str, Any]:
    if index % 10 == 9:  # now and then several keys at once
        chosen = [(index + j) % keys for j in range(5)]
    else:
        chosen = [index % keys]
    return prepare_metadata({f"key_{k}": _value(rng, k, epoch) for k in chosen})


def generate(
    n: int, *, runs: int | None = None, steps: int = 10, keys: int = 50, seed: int = 7
) -> Iterator[Event]:
    """Exactly ``n`` events; by default ``n // 1000`` runs (1,000 for a million)."""
    rng = random.Random(seed)
    runs = runs or max(1, n // 1000)
    per_step = max(3, n // (runs * steps))
    made = 0
    run_index = 0
    while made < n:
        for event in _run(rng, run_index, steps, keys, per_step):
            yield event
            made += 1
            if made == n:
                return
        run_index += 1


def _run(rng: random.Random, index: int, steps: int, keys: int, per_step: int) -> Iterator[Event]:
    run_id = new_uuid()
    yield RunStarted(run_id=run_id, name=f"run-{index}", pipeline_name=f"pipeline-{index % 5}")
    yield MetadataLogged(
        target=ById(kind="pipeline_run", id=run_id),
        metadata=prepare_metadata({"git": {"commit": f"{index:040x}", "dirty": False}}),
    )
    for s in range(steps):
        step_id = new_uuid()
        yield StepStarted(step_id=step_id, run_id=run_id, name=f"step_{s}")
        target = ById(kind="step_run", id=step_id)
        for i in range(per_step - 2):
            yield MetadataLogged(target=target, metadata=_metadata(rng, i, keys, i // keys))
        yield StepFinished(step_id=step_id, status="completed")
    artifact_id = new_uuid()
    yield ArtifactVersionRegistered(artifact_version_id=artifact_id, name="dataset", run_id=run_id)
    yield MetadataLogged(
        target=ById(kind="artifact_version", id=artifact_id),
        metadata=prepare_metadata({"rows": 10_000 + index, "dtypes": {"x": DType("float64")}}),
    )
    model_id = model_version_id_for("model", str(index))
    yield ModelVersionRegistered(model_version_id=model_id, name="model", version=str(index))
    yield RunFinished(run_id=run_id, status="completed")


def one_big_run(steps: int = 100, keys: int = 50, seed: int = 11) -> Iterator[Event]:
    """One run of ``steps`` steps with ``keys`` keys each (the query benchmark's run)."""
    rng = random.Random(seed)
    run_id = new_uuid()
    yield RunStarted(run_id=run_id, name="big-run", pipeline_name="big")
    for s in range(steps):
        step_id = new_uuid()
        yield StepStarted(step_id=step_id, run_id=run_id, name=f"step_{s}")
        target = ById(kind="step_run", id=step_id)
        for k in range(0, keys, 5):
            yield MetadataLogged(
                target=target,
                metadata=prepare_metadata(
                    {f"key_{j}": _value(rng, j, 0) for j in range(k, min(k + 5, keys))}
                ),
            )
        yield StepFinished(step_id=step_id, status="completed")
    yield RunFinished(run_id=run_id, status="completed")


def encoded(events: Iterator[Event]) -> Iterator[bytes]:
    for event in events:
        yield encode_event(event)


def incoming_batches(events: Iterable[Event], size: int) -> Iterator[list[Incoming]]:
    """``events`` as the consumer hands them to the log (encoded, decoded back), ``size`` a list."""
    batch: list[Incoming] = []
    for event in events:
        body = encode_event(event)
        batch.append(Incoming(decode_stored(body), body))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
