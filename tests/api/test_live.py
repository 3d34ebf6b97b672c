"""Server-Sent Events of what the views committed, through a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from metastream.api import create_app
from metastream.api.serving import BackgroundServer
from tests.api.sample import Sample, log_to_run


def _messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    message: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in message:
                yield message
            message = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            message[field] = value.lstrip()


def test_a_commit_reaches_an_open_stream_and_resuming_skips_nothing(sample: Sample) -> None:
    with (
        BackgroundServer(create_app(sample.path, poll_interval=0.02)) as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
    ):
        head = http.get("/api/v1/status").json()["applied_through"]
        with http.stream("GET", "/api/v1/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            messages = _messages(response.iter_lines())
            first = next(messages)
            assert first["event"] == "commit"
            assert int(first["id"]) == head == json.loads(first["data"])["position"]
            log_to_run(sample, sample.runs[0], accuracy=0.99)
            second = next(messages)
        position = int(second["id"])
        assert position == head + 1
        # what the push announced is readable now
        assert http.get("/api/v1/runs/run-0").json()["metadata"]["accuracy"] == 0.99
        assert http.get(f"/api/v1/events?after={head}").json()["events"][0]["position"] == position

        log_to_run(sample, sample.runs[0], accuracy=1.0)  # while no client listens
        resumed = http.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": str(position)})
        with resumed as response:
            third = next(_messages(response.iter_lines()))
        assert int(third["id"]) == position + 1
