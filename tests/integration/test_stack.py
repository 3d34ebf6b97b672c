"""``metastream up --detach`` / ``status`` / ``down``, as a user runs them (real processes).

This starts a real server from the packaged binary, with METASTREAM_HOME in
the test's tmp_path, on a free port.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import redis

from metastream import config
from metastream.config import Settings
from metastream.stack.server import pid_alive, stop_pid
from metastream.urls import mask_url
from tests.integration.stack_fixture import stack_home
from tests.streams import (
    cli,
    fill,
    head,
    run_events,
    views_at_head,
    wait_for_sync,
)

pytestmark = pytest.mark.redis

__all__ = ["stack_home"]  # a fixture, used by name


def test_up_detach_status_and_down(stack_home: Path) -> None:
    settings = Settings.from_env()
    assert config.redis_url(settings) is None

    before = cli("status")
    assert before.returncode == 1
    assert before.stderr.count("\n") == 1
    assert "metastream up" in before.stderr

    started = cli("up", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "metastream is up" in started.stdout
    record = json.loads(settings.stack_file.read_text())
    assert set(record) >= {"redis_url", "processes", "db", "stream", "started"}
    roles = [p["role"] for p in record["processes"]]
    assert roles[:3] == ["server", "consumer", "projector"]
    assert record["server_pid"] == record["processes"][0]["pid"]  # kept for scripts
    assert record["consumer_pid"] == record["processes"][1]["pid"]
    projector_pid = record["processes"][2]["pid"]
    assert pid_alive(projector_pid)
    url = record["redis_url"]
    assert not url.endswith(":6379/0")
    shown = mask_url(url)
    assert shown != url  # the stack's Redis has a password
    assert pid_alive(record["server_pid"])
    assert pid_alive(record["consumer_pid"])
    assert record["db"] == str(settings.db)
    # Producers find the stack through the stack file.
    assert config.redis_url(Settings.from_env()) == url

    again = cli("up", "--detach")
    assert again.returncode == 0
    assert "already up" in again.stdout
    assert shown in again.stdout

    client = redis.Redis.from_url(url)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert Path(str(client.config_get("dir")["dir"])) == settings.redis_dir
        bodies = run_events(250)
        fill(client, record["stream"], bodies)
        wait_for_sync(lambda: head(settings.db) == 250, 30)
        wait_for_sync(lambda: client.xpending(record["stream"], "metastream")["pending"] == 0)
        wait_for_sync(lambda: views_at_head(settings.db), 30)  # the projector's work
    finally:
        client.close()

    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    out = status.stdout
    assert shown in out
    assert url not in out
    assert "up (valkey" in out or "up (redis" in out
    assert f"consumer   pid {record['consumer_pid']}  running" in out
    assert f"projector  pid {projector_pid}  running" in out
    assert "metastream:events  250 entries" in out
    assert "group metastream  lag 0  pending 0  consumers 1" in out
    assert "metastream:dead  0 entries" in out
    assert "head 250" in out
    assert "view latest  checkpoint 250" in out
    assert "view registry  checkpoint 250" in out

    stopped = cli("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.index("stopping the consumer") < stopped.stdout.index("stopping redis")
    assert f"stopping the projector (pid {projector_pid})" in stopped.stdout
    assert not settings.stack_file.exists()
    assert not pid_alive(record["consumer_pid"])
    assert not pid_alive(projector_pid)
    assert not pid_alive(record["server_pid"])
    assert config.redis_url(Settings.from_env()) is None
    assert "shut down gracefully" in (stack_home / "consumer.log").read_text()

    after = cli("status")
    assert after.returncode == 1
    assert "head 250" in after.stdout  # the log outlives the stack
    assert cli("down").stdout.strip() == "metastream is not up"


def test_up_again_keeps_the_events_of_the_last_run(stack_home: Path) -> None:
    """Redis runs with AOF: entries not yet consumed survive ``down`` and ``up``."""
    settings = Settings.from_env()
    assert cli("up", "--detach").returncode == 0
    record = json.loads(settings.stack_file.read_text())
    client = redis.Redis.from_url(record["redis_url"])
    try:
        # Stop the consumer only: what arrives now waits in the stream.
        stop_pid(record["consumer_pid"], timeout=20)
        bodies = run_events(100)
        fill(client, record["stream"], bodies)
    finally:
        client.close()
    assert cli("down").returncode == 0
    assert head(settings.db) == 0

    assert cli("up", "--detach").returncode == 0
    wait_for_sync(lambda: head(settings.db) == 100, 30)
    assert cli("down").returncode == 0


def test_status_says_when_the_projector_is_gone_and_the_views_catch_up_after(
    stack_home: Path,
) -> None:
    """SIGKILL of the stack's projector: status exits 1 and says so; nothing is lost."""
    settings = Settings.from_env()
    assert cli("up", "--detach").returncode == 0
    record = json.loads(settings.stack_file.read_text())
    (projector,) = [p["pid"] for p in record["processes"] if p["role"] == "projector"]
    os.kill(projector, signal.SIGKILL)
    wait_for_sync(lambda: not pid_alive(projector), 10)
    client = redis.Redis.from_url(record["redis_url"])
    try:
        fill(client, record["stream"], run_events(50))
    finally:
        client.close()
    wait_for_sync(lambda: head(settings.db) == 50, 30)  # the consumer goes on
    status = cli("status")
    assert status.returncode == 1
    assert f"projector  pid {projector}  NOT RUNNING" in status.stdout
    assert "the projector is not running" in status.stderr
    assert cli("down").returncode == 0
    assert cli("up", "--detach").returncode == 0  # a new projector resumes from the checkpoints
    wait_for_sync(lambda: views_at_head(settings.db), 30)
    assert cli("down").returncode == 0
