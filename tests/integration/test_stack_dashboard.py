"""The dashboard in the local stack: `up` starts it, `status` shows it, `down` stops it."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

import pytest

from metastream.config import Settings
from metastream.stack.server import pid_alive
from tests.integration.stack_fixture import stack_home
from tests.streams import cli

pytestmark = pytest.mark.redis

__all__ = ["stack_home"]  # a fixture, used by name


def test_up_serves_the_dashboard_status_shows_it_and_down_stops_it(stack_home: Path) -> None:
    port = int(os.environ["METASTREAM_UI_PORT"])  # a free port of the test's own (conftest)
    started = cli("up", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"dashboard: http://127.0.0.1:{port}/" in started.stdout

    record = json.loads(Settings.from_env().stack_file.read_text())
    (ui,) = [p for p in record["processes"] if p["role"] == "ui"]
    assert record["ui_url"] == f"http://127.0.0.1:{port}/"
    with urllib.request.urlopen(record["ui_url"], timeout=10) as page:
        assert page.status == 200
        assert b"metastream" in page.read()

    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"dashboard  http://127.0.0.1:{port}/  pid {ui['pid']}  answers" in status.stdout

    stopped = cli("down")
    assert "stopping the dashboard" in stopped.stdout
    assert not pid_alive(ui["pid"])


def test_a_busy_port_leaves_the_stack_up_without_a_dashboard(stack_home: Path) -> None:
    port = int(os.environ["METASTREAM_UI_PORT"])
    with socket.create_server(("127.0.0.1", port)):  # someone else has the port
        started = cli("up", "--detach")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "warning: the dashboard is not running" in started.stdout
        assert f"port {port} on 127.0.0.1 is in use" in started.stdout
        record = json.loads(Settings.from_env().stack_file.read_text())
        assert [p["role"] for p in record["processes"]] == ["server", "consumer", "projector"]
        assert cli("status").returncode == 0  # the dashboard is optional
    assert cli("down").returncode == 0


def test_no_ui_starts_none(stack_home: Path) -> None:
    started = cli("up", "--detach", "--no-ui")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "dashboard" not in started.stdout
    assert cli("down").returncode == 0
