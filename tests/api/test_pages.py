"""The dashboard's pages as HTML (what a browser gets before any script runs)."""

from __future__ import annotations

from litestar.testing import TestClient

from tests.api.sample import Sample

Client = TestClient  # type: ignore[type-arg]


def test_runs_list_shows_runs_filters_and_metrics(client: Client) -> None:
    html = client.get("/").text
    assert html.index("etl-nightly") < html.index("run-2") < html.index("run-0")  # newest first
    assert "train::accuracy" in html
    assert 'name="runs"' in html
    assert 'form="compare-form"' in html
    filtered = client.get("/?pipeline=etl").text
    assert "etl-nightly" in filtered
    assert "run-0" not in filtered
    assert "run-2" in client.get("/?status=failed").text
    assert "No runs match" in client.get("/?q=nothing-like-this").text


def test_run_page_has_cards_special_types_steps_and_links(client: Client, sample: Sample) -> None:
    html = client.get("/runs/run-0").text
    assert '<section class="card card-general">' in html
    assert ">git</a></h3>" in html  # one card per top-level dict
    assert 'href="https://example.com/data.csv"' in html  # a Uri is a link
    assert "1.5 MiB" in html
    assert 'title="1,572,864 bytes"' in html
    assert 'class="v-dtype">float32' in html
    assert 'class="v-path">/data/train.csv' in html
    assert "badge-tuple" in html
    assert f'href="/steps/{sample.runs[0].step_ids["load"]}"' in html
    assert f'href="/artifact-versions/{sample.artifact_id}"' in html
    assert 'name="as_of"' in html


def test_as_of_page_shows_the_past(client: Client, sample: Sample) -> None:
    html = client.get("/runs/run-0?as_of=2").text
    assert "historical view" in html
    assert "No steps yet." in html
    assert "status-running" in html


def test_entity_pages(client: Client, sample: Sample) -> None:
    step = client.get(f"/steps/{sample.runs[0].step_ids['train']}").text
    assert "accuracy" in step
    assert "run-0" in step
    artifact = client.get(f"/artifact-versions/{sample.artifact_id}").text
    assert "dataset" in artifact
    assert "rows" in artifact
    assert ">run-0</a> / artifact version" in artifact  # the run that made it, by name
    model = client.get("/model-versions/classifier?version=1").text
    assert "auc" in model


def test_history_page_draws_numeric_values(client: Client, sample: Sample) -> None:
    step = sample.runs[0].step_ids["train"]
    html = client.get(f"/history?entity={step}&key=loss").text
    assert "<polyline" in html
    assert html.count('<circle class="dot"') == 5
    assert "5 values logged" in html


def test_compare_page_embeds_the_comparison_as_data(client: Client) -> None:
    html = client.get("/compare?runs=run-0&runs=run-1&runs=run-2&baseline=run-1").text
    assert 'id="compare-data"' in html
    assert 'src="/static/compare.js"' in html
    assert "3 runs" in html
    assert "Select up to 20 runs" in client.get("/compare").text


def test_unknown_pages_are_404_pages(client: Client) -> None:
    response = client.get("/runs/no-such-run")
    assert response.status_code == 404
    assert "Not found" in response.text
    assert "no-such-run" in response.text


def test_static_assets_stay_small(client: Client) -> None:
    from metastream.api.app import STATIC

    total = sum(p.stat().st_size for p in STATIC.iterdir())
    assert total < 1_500_000
    assert client.get("/static/compare.js").status_code == 200
