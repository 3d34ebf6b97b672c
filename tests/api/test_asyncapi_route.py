"""``metastream ui`` serves the stream's AsyncAPI document at /docs/asyncapi."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from metastream.api import create_app
from metastream.schemas.asyncapi import asyncapi_document
from tests.api.sample import Sample


def test_the_asyncapi_document_is_served(sample: Sample, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METASTREAM_STREAM", "ours:events")
    with TestClient(app=create_app(sample.path)) as client:
        response = client.get("/docs/asyncapi")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = json.loads(response.content)
    assert document == json.loads(json.dumps(asyncapi_document("ours:events")))
    assert document["asyncapi"].startswith("3.")


def test_it_needs_the_token_like_everything_else(sample: Sample) -> None:
    with TestClient(app=create_app(sample.path, token="t" * 20)) as client:
        denied = client.get("/docs/asyncapi", follow_redirects=False)
        assert denied.status_code == 303  # to the login page, as every page off /api/
        assert denied.headers["location"] == "/login"
        ok = client.get("/docs/asyncapi", headers={"Authorization": "Bearer " + "t" * 20})
        assert ok.status_code == 200
