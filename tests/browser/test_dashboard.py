"""The dashboard in a real browser: runs list, run page, comparison, live updates, XSS."""

from __future__ import annotations

from typing import Any

from metastream.api.serving import BackgroundServer
from metastream.schemas import Uri
from tests.api.sample import XSS_KEY, XSS_URI, XSS_VALUE, Sample, ingest, log_to_run

Page = Any  # playwright.sync_api.Page (imported lazily: the tests skip without Chromium)


def test_runs_list_and_select_runs_to_compare(page: Page, server: BackgroundServer) -> None:
    page.goto(server.url + "/")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 7
    assert rows.first.locator(".run-link").inner_text() == "etl-nightly"
    button = page.locator("#compare-button")
    assert button.is_disabled()
    for name in ("run-1", "run-3", "run-4"):
        page.get_by_label(f"select {name}").check()
    assert page.locator("#selected-count").inner_text() == "3 selected"
    button.click()
    page.wait_for_url("**/compare?**")
    assert page.locator("#compare-table thead th").count() == 4  # the key column and 3 runs
    page.goto(server.url + "/?status=failed")
    assert page.locator("table.runs tbody tr").count() == 1
    assert page.errors == []


def test_run_page_cards_and_special_types(page: Page, server: BackgroundServer) -> None:
    page.goto(server.url + "/runs/run-0")
    titles = page.locator(".card h3").all_inner_texts()
    assert "general" in [t.lower() for t in titles]
    assert "git" in titles
    assert "dataset" in titles
    link = page.locator("a.v-uri").first
    assert link.get_attribute("href") == "https://example.com/data.csv"
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    size = page.locator(".v-size").first
    assert size.inner_text() == "1.5 MiB"
    assert page.locator(".v-dtype").first.inner_text() == "float32"
    assert page.locator(".v-path").first.inner_text() == "/data/train.csv"
    assert page.locator("details.step").count() == 2
    assert page.errors == []


def test_comparison_highlights_changes_draws_the_plot_and_brushing_filters(
    page: Page, server: BackgroundServer
) -> None:
    runs = "&".join(f"runs=run-{i}" for i in range(6))
    page.goto(f"{server.url}/compare?{runs}")
    lr_row = page.locator('#compare-table tr[data-key="learning_rate"] td')
    assert lr_row.count() == 7
    changed = page.locator('#compare-table tr[data-key="learning_rate"] td.changed')
    assert changed.count() == 5  # every run but the baseline
    assert page.locator('#compare-table tr[data-key="epochs"] td.changed').count() == 0
    assert (
        "+0.1" in page.locator('#compare-table tr[data-key="learning_rate"] td').nth(2).inner_text()
    )

    page.locator("#only-diff").check()
    assert page.locator('#compare-table tr[data-key="epochs"]').count() == 0
    assert "only_diff=1" in page.url

    page.select_option("#baseline", label="run-3")
    assert page.locator('#compare-table tr[data-key="learning_rate"] td.changed').count() == 5
    assert "baseline=" in page.url

    lines = page.locator("#plot polyline.pc-line")
    assert lines.count() == 6
    assert page.locator("#plot .pc-axis").count() >= 2

    axis = page.locator('#plot .pc-axis[data-key="learning_rate"] .pc-hit')
    box = axis.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 2)  # the top of the axis: the largest learning rates
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.3, steps=5)
    page.mouse.up()
    dimmed = page.locator("#plot polyline.pc-line.dimmed")
    assert 0 < dimmed.count() < 6
    kept = 6 - dimmed.count()
    assert page.locator("#brush-state").inner_text().startswith(f"{kept} of 6 runs")
    assert page.locator("#compare-table thead th").count() == kept + 1  # the table follows
    page.locator("#clear-brush").click()
    assert page.locator("#plot polyline.pc-line.dimmed").count() == 0

    first = page.locator("#plot polyline.pc-line").first
    (x1, y1), (x2, y2) = (
        map(float, p.split(",")) for p in first.get_attribute("points").split()[:2]
    )
    origin = page.locator("#plot svg").bounding_box()
    page.mouse.move(origin["x"] + (x1 + x2) / 2, origin["y"] + (y1 + y2) / 2)
    assert "run-" in page.locator("#plot-tooltip").inner_text()
    page.locator('#plot .pc-axis[data-key="learning_rate"] [data-action="log"]').click()
    assert "log=learning_rate" in page.url
    assert page.errors == []


def test_an_open_page_updates_when_metadata_is_committed(
    page: Page, server: BackgroundServer, sample: Sample
) -> None:
    page.goto(server.url + "/runs/run-0")
    page.wait_for_selector('#live[data-state="live"]')
    assert page.locator("text=fresh_metric").count() == 0
    page.evaluate("window.__marker = 'same page'")
    log_to_run(sample, sample.runs[0], fresh_metric=0.123)
    page.locator("text=fresh_metric").wait_for()
    assert page.evaluate("window.__marker") == "same page"  # updated without a reload
    assert page.errors == []


def test_html_and_javascript_in_keys_values_and_uris_never_run(
    page: Page, server: BackgroundServer, sample: Sample
) -> None:
    ingest(
        sample.path,
        [
            sample.runs[0].on_run(
                **{XSS_KEY: XSS_VALUE},
                card={XSS_KEY: Uri(XSS_URI)},
                plain=Uri(XSS_URI),
            )
        ],
    )
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for url in ("/runs/run-0", "/compare?runs=run-0&runs=run-1", "/"):
        page.goto(server.url + url)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof window.__xss") == "undefined", url
    page.goto(server.url + "/runs/run-0")
    assert page.locator(f"text={XSS_VALUE}").count() >= 1  # shown as text
    plain = page.locator(".v-uri-plain").first
    assert plain.inner_text() == XSS_URI
    plain.click()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator('a[href^="javascript:"]').count() == 0
    page.goto(server.url + "/compare?runs=run-0&runs=run-1")
    assert page.locator("#compare-table img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


def test_a_run_with_many_steps_loads_a_steps_cards_when_opened(
    page: Page, server: BackgroundServer, sample: Sample
) -> None:
    from tests.events import Pipeline

    big = Pipeline("many-steps")
    events: list[Any] = [big.started()]
    for i in range(15):
        events += [
            big.step(f"s{i}"),
            big.on_step(f"s{i}", score=i, card={"x": i}),
            big.step_done(f"s{i}"),
        ]
    ingest(sample.path, events)
    page.goto(server.url + "/runs/many-steps")
    assert page.locator("details.step").count() == 15
    assert page.locator("details.step .card").count() == 0  # folded, not loaded
    page.locator("details.step summary").nth(7).click()
    cards = page.locator("details.step").nth(7).locator(".card")
    cards.first.wait_for()
    assert cards.count() == 2
    assert "7" in page.locator("details.step").nth(7).locator(".v-num").first.inner_text()
    assert page.errors == []
