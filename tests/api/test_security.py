"""The token off loopback, escaping, the CSP, and links only for http(s)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar.testing import TestClient

from metastream.api import UiSettings, check_exposure, create_app
from metastream.api.render import value_html
from metastream.api.security import CSP
from metastream.cli import main
from metastream.schemas import Uri
from tests.api.sample import XSS_KEY, XSS_URI, XSS_VALUE, Sample, build, ingest

TOKEN = "a-long-enough-secret-token"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_refuses_a_public_address_without_a_token(host: str) -> None:
    with pytest.raises(ValueError, match="METASTREAM_UI_TOKEN"):
        check_exposure(UiSettings(host=host))
    with pytest.raises(ValueError, match="at least 16"):
        check_exposure(UiSettings(host=host, token="short"))
    check_exposure(UiSettings(host=host, token=TOKEN))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_exposure(UiSettings(host=host))


def test_ui_command_refuses_to_start_in_public_without_a_token(
    sample: Sample, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("METASTREAM_UI_TOKEN", raising=False)
    code = main(["--db", str(sample.path), "ui", "--host", "0.0.0.0", "--port", "0"])
    assert code == 1
    assert "METASTREAM_UI_TOKEN" in capsys.readouterr().err


def test_with_a_token_every_request_needs_it(sample: Sample) -> None:
    with TestClient(app=create_app(sample.path, token=TOKEN)) as client:
        denied = client.get("/api/v1/runs")
        assert denied.status_code == 401
        assert denied.json()["status"] == 401
        assert (
            client.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        ok = client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login"
        assert client.get("/api/v1/stream").status_code == 401
        assert client.get("/api/v1/schema/openapi.json").status_code == 401


def test_login_form_sets_an_httponly_cookie(sample: Sample) -> None:
    with TestClient(app=create_app(sample.path, token=TOKEN)) as client:
        assert client.get("/login").status_code == 200
        bad = client.post("/login", data={"token": "nope"}, follow_redirects=False)
        assert bad.headers["location"].startswith("/login")
        assert "set-cookie" not in bad.headers
        good = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert client.get("/api/v1/runs").status_code == 200  # the cookie now travels
        assert client.get("/").status_code == 200


def test_every_response_has_a_csp_without_unsafe_inline(client: TestClient) -> None:  # type: ignore[type-arg]
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP
    assert "script-src 'self'" in CSP
    for url in ("/", "/runs/run-0", "/api/v1/runs", "/static/app.js", "/api/v1/runs/nope"):
        response = client.get(url)
        assert response.headers["content-security-policy"] == CSP, url
        assert response.headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script_or_style(client: TestClient) -> None:  # type: ignore[type-arg]
    for url in ("/", "/runs/run-0", "/compare?runs=run-0&runs=run-1"):
        html = client.get(url).text
        for script in re.findall(r"<script[^>]*>", html):
            assert "src=" in script or 'type="application/json"' in script, script
        assert " style=" not in html
        assert not re.search(r"\son[a-z]+=", html), url


def test_user_strings_are_escaped_and_only_http_uris_are_links(tmp_path: Path) -> None:
    sample = build(tmp_path / "m.db", runs=1)
    run = sample.runs[0]
    ingest(
        sample.path,
        [
            run.on_run(
                **{XSS_KEY: XSS_VALUE},
                card={XSS_KEY: Uri(XSS_URI), "web": Uri("https://example.com/?a=1&b=<2>")},
                plain=Uri(XSS_URI),
            )
        ],
    )
    with TestClient(app=create_app(sample.path)) as client:
        for url in ("/runs/run-0", f"/compare?runs={run.run_id}"):
            html = client.get(url).text
            assert "<script>window.__xss" not in html
            assert "<img src=x" not in html
            assert 'href="javascript:' not in html
            assert "&lt;img src=x" in html or "\\u003cimg src=x" in html
        page = client.get("/runs/run-0").text
        assert 'href="https://example.com/?a=1&amp;b=&lt;2&gt;"' in page


@pytest.mark.parametrize(
    ("uri", "link"),
    [
        ("https://example.com/x", True),
        ("http://example.com", True),
        ("HTTPS://EXAMPLE.COM", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("s3://bucket/key", False),
        ("https:/missing-host", False),
        ("http://exa mple.com", False),
        ("vbscript:msgbox", False),
    ],
)
def test_a_uri_is_a_link_only_for_http_and_https(uri: str, link: bool) -> None:
    html = str(value_html(Uri(uri)))
    assert ("<a " in html) is link
    assert "<script>" not in html
