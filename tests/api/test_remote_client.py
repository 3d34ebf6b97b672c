"""``Client(url=...)`` reads the HTTP API and gives what ``Client(db)`` gives."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator

import httpx
import pytest

from metastream import Client
from metastream.api import create_app
from metastream.api.serving import BackgroundServer
from metastream.errors import AmbiguousReference, LogElsewhere, ReferenceNotFound
from metastream.query.remote import RemoteClient
from metastream.schemas import DType, StorageSize, Uri, values_equal
from tests.api.sample import Sample, ingest

TOKEN = "remote-client-secret-token"


@pytest.fixture
def server(sample: Sample) -> Iterator[BackgroundServer]:
    ingest(
        sample.path,
        [
            sample.runs[0].on_run(
                special={"uri": Uri("s3://b/k"), "dtype": DType("int8"), "size": StorageSize(7)},
                when=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
                both=({1, 2}, frozenset({"a"})),
                big=-(2**80),
                nan=math.nan,
            )
        ],
    )
    with BackgroundServer(create_app(sample.path, token=TOKEN)) as running:
        yield running


def _same(a: object, b: object) -> None:
    for field in ("id", "name", "status", "created", "finished", "error"):
        assert getattr(a, field, None) == getattr(b, field, None), field
    assert values_equal(a.run_metadata, b.run_metadata)  # type: ignore[attr-defined]


def test_remote_reads_equal_local_reads(server: BackgroundServer, sample: Sample) -> None:
    local = Client(sample.path)
    remote = Client(url=server.url, token=TOKEN)
    try:
        assert isinstance(remote, RemoteClient)
        run_local, run_remote = local.get_pipeline_run("run-0"), remote.get_pipeline_run("run-0")
        _same(run_local, run_remote)
        assert type(run_remote.run_metadata["special"]["uri"]) is Uri
        assert list(run_remote.steps) == ["load", "train"]
        _same(run_local.steps["train"], run_remote.steps["train"])
        _same(
            local.get_run_step(run_local.steps["load"].id),
            remote.get_run_step(run_local.steps["load"].id),
        )
        _same(local.get_artifact_version("dataset"), remote.get_artifact_version("dataset"))
        _same(local.get_model_version("classifier", 1), remote.get_model_version("classifier", 1))
        assert [a.id for a in remote.get_run_artifacts("run-0")] == [
            a.id for a in local.get_run_artifacts("run-0")
        ]
        assert [r.name for r in remote.list_pipeline_runs("training", size=2)] == [
            r.name for r in local.list_pipeline_runs("training", size=2)
        ]
        history = remote.get_metadata_history(run_remote.steps["train"], "loss")
        assert [h.value for h in history] == [
            h.value for h in local.get_metadata_history(run_local.steps["train"], "loss")
        ]
        assert remote.compare_runs(["run-1", "run-2"]) == local.compare_runs(["run-1", "run-2"])
    finally:
        local.close()
        remote.close()


def test_remote_errors_are_the_local_ones(server: BackgroundServer) -> None:
    with Client(url=server.url, token=TOKEN) as remote:
        with pytest.raises(ReferenceNotFound):
            remote.get_pipeline_run("no-such-run")
        with pytest.raises(AmbiguousReference):
            remote.get_pipeline_run("run")
    with Client(url=server.url, token="wrong") as denied, pytest.raises(Exception, match="401"):
        denied.get_pipeline_run("run-0")


def test_a_log_elsewhere_is_the_local_error() -> None:
    problem = {"status": 501, "message": "the event log is in redis://…", "candidates": None}
    with RemoteClient(url="http://metadata.test") as remote:
        remote.http = httpx.Client(
            base_url="http://metadata.test/api/v1",
            transport=httpx.MockTransport(lambda _: httpx.Response(501, json=problem)),
        )
        with pytest.raises(LogElsewhere, match="redis://"):
            remote.get_pipeline_run("run-0")
