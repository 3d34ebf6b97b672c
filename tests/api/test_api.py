"""The JSON API through Litestar's test client, over a real SQLite database."""

from __future__ import annotations

import datetime
import math
import uuid
from pathlib import Path

from litestar.testing import TestClient

from metastream.api import create_app
from metastream.schemas import DType, StorageSize, Uri
from metastream.schemas import Path as MetaPath
from metastream.schemas.jsonform import from_json_form
from tests.api.sample import Sample, build, ingest
from tests.events import Pipeline

Client = TestClient  # type: ignore[type-arg]


def test_runs_list_is_newest_first_with_metrics(client: Client, sample: Sample) -> None:
    body = client.get("/api/v1/runs").json()
    names = [r["name"] for r in body["runs"]]
    assert names == ["etl-nightly", "run-2", "run-1", "run-0"]
    run0 = body["runs"][-1]
    assert run0["status"] == "completed"
    assert run0["metrics"]["learning_rate"] == 0.1
    assert run0["metrics"]["train::accuracy"] == 0.8
    assert body["next_cursor"] is None


def test_runs_filters(client: Client) -> None:
    def names(query: str) -> list[str]:
        return [r["name"] for r in client.get(f"/api/v1/runs?{query}").json()["runs"]]

    assert names("pipeline=etl") == ["etl-nightly"]
    assert names("status=failed") == ["run-2"]
    assert names("name=RUN-1") == ["run-1"]
    assert names("name=%25") == []  # a LIKE wildcard is a literal character
    assert names("sort=name") == ["etl-nightly", "run-0", "run-1", "run-2"]
    assert names("until=2000-01-01T00:00:00Z") == []
    assert len(names("since=2000-01-01")) == 4


def test_cursor_pages_cover_every_run_once_even_while_runs_arrive(tmp_path: Path) -> None:
    sample = build(tmp_path / "m.db", runs=7)
    with TestClient(app=create_app(sample.path)) as client:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
            body = client.get(f"/api/v1/runs?{query}").json()
            seen += [r["id"] for r in body["runs"]]
            pages += 1
            if pages == 1:  # a run committed after the first page shifts nothing
                late = Pipeline("late-run")
                ingest(sample.path, [late.started()])
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert str(late.run_id) not in seen


def test_run_with_cards_rollups_steps_artifacts(client: Client, sample: Sample) -> None:
    run = client.get("/api/v1/runs/run-0").json()
    assert run["metadata"]["git"] == {"commit": "abc0", "dirty": False}  # a card stays a group
    dataset = run["metadata"]["load::dataset"]
    assert dataset["source"] == {"$type": "uri", "value": "https://example.com/data.csv"}
    assert dataset["size"] == {"$type": "storage_size", "value": 1_572_864}
    assert [s["name"] for s in run["steps"]] == ["load", "train"]
    assert run["steps"][1]["metadata"]["shape"] == {"$type": "tuple", "value": [3, 4]}
    assert [a["name"] for a in run["artifacts"]] == ["dataset"]
    no_rollups = client.get("/api/v1/runs/run-0?rollups=false").json()
    assert not any("::" in k for k in no_rollups["metadata"])
    assert client.get(f"/api/v1/runs/{sample.runs[0].run_id}").json() == run
    assert client.get("/api/v1/runs/etl").json()["name"] == "etl-nightly"  # a unique prefix


def test_values_keep_their_types_through_json(tmp_path: Path) -> None:
    values = {
        "uri": Uri("s3://bucket/x"),
        "path": MetaPath("/tmp/x"),
        "dtype": DType("int64"),
        "size": StorageSize(2**60),
        "tuple": (1, "a"),
        "set": {1, 2},
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "big": 2**70,
        "nan": math.nan,
        "inf": -math.inf,
        "nested": {"$type": "not a tag", "inner": [(1,)]},
    }
    sample = build(tmp_path / "m.db", runs=1)
    ingest(sample.path, [sample.runs[0].on_run(**values)])
    with TestClient(app=create_app(sample.path)) as client:
        got = client.get("/api/v1/runs/run-0").json()["metadata"]
    for key, value in values.items():
        back = from_json_form(got[key])
        assert type(back) is type(value), key
        if key == "nan":
            assert math.isnan(back)
        else:
            assert back == value, key


def test_entities_by_every_reference(client: Client, sample: Sample) -> None:
    run = sample.runs[0]
    by_name = client.get("/api/v1/runs/run-0/steps/load").json()
    by_id = client.get(f"/api/v1/steps/{run.step_ids['load']}").json()
    assert by_name == by_id
    assert by_id["metadata"]["rows"] == 1000
    artifact = client.get("/api/v1/artifact-versions/dataset").json()
    assert artifact["id"] == str(sample.artifact_id)
    assert client.get("/api/v1/artifact-versions/dataset?version=1").json() == artifact
    assert client.get(f"/api/v1/artifact-versions/{sample.artifact_id}").json() == artifact
    model = client.get("/api/v1/model-versions/classifier?version=1").json()
    assert model["metadata"] == {"auc": 0.91}
    assert client.get(f"/api/v1/model-versions/{sample.model_id}").json() == model


def test_errors_are_json_404_for_unknown_and_400_for_bad(client: Client) -> None:
    for url in (
        "/api/v1/runs/no-such-run",
        "/api/v1/runs/run-0/steps/no-such-step",
        f"/api/v1/steps/{uuid.uuid4()}",
        "/api/v1/artifact-versions/nothing",
        "/api/v1/model-versions/classifier?version=9",
        f"/api/v1/entities/{uuid.uuid4()}/history?key=x",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["status"] == 404
        assert response.json()["message"]
    for url in (
        "/api/v1/runs/run-0?as_of=yesterday",
        "/api/v1/steps/not-a-uuid",
        "/api/v1/runs?cursor=garbage",
        "/api/v1/runs?limit=0",
        "/api/v1/runs?status=sleeping",
        "/api/v1/runs?sort=color",
        "/api/v1/runs?since=soon",
        "/api/v1/events?after=-1",
        "/api/v1/compare",
        "/api/v1/compare?runs=run-0&baseline=run-1",
        "/api/v1/runs/run",  # a prefix of several runs
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.json()["status"] == 400
    ambiguous = client.get("/api/v1/runs/run").json()
    assert len(ambiguous["candidates"]) >= 3


def test_as_of_reads_metadata_and_registry_at_a_point(client: Client, sample: Sample) -> None:
    events = client.get("/api/v1/events?limit=1000").json()["events"]
    step_started = next(
        e["position"] for e in events if e["type"] == "StepStarted" and e["data"]["name"] == "load"
    )
    before_step = client.get(f"/api/v1/runs/run-0?as_of={step_started - 1}").json()
    assert before_step["steps"] == []
    assert before_step["status"] == "running"
    assert before_step["metadata"]["learning_rate"] == 0.1
    assert not any("::" in k for k in before_step["metadata"])
    assert before_step["as_of"] == {"position": step_started - 1, "time": None}
    now = client.get("/api/v1/runs/run-0").json()
    assert now["status"] == "completed"
    assert len(now["steps"]) == 2
    before_run = client.get("/api/v1/runs/run-0?as_of=0")
    assert before_run.status_code == 404
    early = client.get("/api/v1/model-versions/classifier?version=1&as_of=1")
    assert early.status_code == 404
    in_the_past = client.get("/api/v1/runs/run-0?as_of=2000-01-01T00:00:00Z")
    assert in_the_past.status_code == 404


def test_as_of_before_an_entity_existed_says_so_as_the_cli_does(
    client: Client, sample: Sample
) -> None:
    """The API reads "as of" through the same rules as ``metastream show --as-of``: the 404
    says when the entity was registered, so a user can pick a later point."""
    before_run = client.get("/api/v1/runs/run-0?as_of=0").json()
    assert before_run["message"].startswith(
        "pipeline run 'run-0' did not exist yet as of position 0"
    )
    assert "(it was registered at position " in before_run["message"]
    early = client.get("/api/v1/model-versions/classifier?version=1&as_of=1").json()
    assert early["message"].startswith("model 'classifier' version '1' did not exist yet as of")
    in_the_past = client.get("/api/v1/runs/run-0?as_of=2000-01-01T00:00:00Z").json()
    assert "did not exist yet as of 2000-01-01T00:00:00+00:00" in in_the_past["message"]


def test_history_of_a_key(client: Client, sample: Sample) -> None:
    step = sample.runs[1].step_ids["train"]
    body = client.get(f"/api/v1/entities/{step}/history?key=loss").json()
    assert body["kind"] == "step_run"
    assert [round(e["value"], 3) for e in body["entries"]] == [1.01, 0.51, 0.343, 0.26, 0.19]
    assert all(e["component"] is None for e in body["entries"])
    by_name = client.get("/api/v1/runs/run-1/steps/train/history?key=loss").json()
    assert by_name == body
    run_key = client.get("/api/v1/runs/run-1/history?key=learning_rate").json()
    assert [e["value"] for e in run_key["entries"]] == [0.2]
    assert client.get("/api/v1/runs/run-1/history?key=never-logged").json()["entries"] == []


def test_compare_tracks_changes_against_a_baseline(client: Client) -> None:
    body = client.get("/api/v1/compare?runs=run-0,run-1&runs=run-2&baseline=run-1").json()
    assert [r["name"] for r in body["runs"]] == ["run-0", "run-1", "run-2"]
    rows = {k["key"]: k for k in body["keys"]}
    assert rows["epochs"]["differs"] == [False, False, False]
    assert rows["learning_rate"]["differs"] == [True, False, True]
    assert rows["optimizer"]["values"] == ["adam", "sgd", "adam"]
    assert rows["git.commit"]["differs"] == [True, False, True]  # card fields are rows
    assert rows["train::accuracy"]["numeric"] is True
    assert rows["optimizer"]["numeric"] is False


def test_compare_refuses_more_than_20_runs(tmp_path: Path) -> None:
    sample = build(tmp_path / "m.db", runs=21)
    with TestClient(app=create_app(sample.path)) as client:
        refs = ",".join(f"run-{i}" for i in range(21))
        response = client.get(f"/api/v1/compare?runs={refs}")
        assert response.status_code == 400
        assert "at most 20" in response.json()["message"]
        twenty = ",".join(f"run-{i}" for i in range(20))
        assert client.get(f"/api/v1/compare?runs={twenty}").status_code == 200


def test_events_feed_pages_through_the_log(client: Client) -> None:
    first = client.get("/api/v1/events?limit=5").json()
    assert [e["position"] for e in first["events"]] == [1, 2, 3, 4, 5]
    assert first["events"][0]["type"] == "RunStarted"
    logged = first["events"][1]
    assert logged["type"] == "MetadataLogged"
    assert logged["data"]["metadata"]["learning_rate"] == 0.1
    assert logged["data"]["target"]["kind"] == "pipeline_run"
    positions = []
    after = 0
    while True:
        page = client.get(f"/api/v1/events?after={after}&limit=7").json()
        if not page["events"]:
            break
        positions += [e["position"] for e in page["events"]]
        after = page["next_after"]
    assert positions == list(range(1, first["head"] + 1))
    assert first["applied_through"] == first["head"]


def test_openapi_schema_is_served_and_lists_the_api(client: Client) -> None:
    schema = client.get("/api/v1/schema/openapi.json").json()
    for path in ("/api/v1/runs", "/api/v1/runs/{run}", "/api/v1/compare", "/api/v1/events"):
        assert path in schema["paths"], path
    assert not any(p.startswith("/runs") for p in schema["paths"])  # pages are not API


def test_only_reads(client: Client) -> None:
    for method in ("post", "put", "delete", "patch"):
        response = getattr(client, method)("/api/v1/runs/run-0")
        assert response.status_code == 405, method


def test_a_name_two_runs_share_is_ambiguous_as_for_the_client(
    client: Client, sample: Sample
) -> None:
    twin = Pipeline("run-0", "training")  # a second run named run-0 (two processes raced)
    ingest(sample.path, [twin.started()])
    answer = client.get("/api/v1/runs/run-0")
    assert answer.status_code == 400
    assert str(twin.run_id) in answer.text
