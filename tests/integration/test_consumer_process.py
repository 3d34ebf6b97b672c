"""The consumer as a process of its own: killed mid-batch, stopped by SIGTERM, run by FastStream.

"In the middle of a batch" is made exact with the consumer's test hook
(``METASTREAM_TEST_HOOK``): it SIGKILLs the process, or sleeps, right
before the SQLite commit or right after it (before the XACK).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from tests.integration.consumer_fixtures import log, output, s
from tests.streams import (
    assert_exactly_once,
    consumer_env,
    fill,
    head,
    log_ids,
    pending,
    run_events,
    start_consumer_process,
    stop_process,
    wait_for_sync,
)

pytestmark = pytest.mark.redis

__all__ = ["log", "s"]  # fixtures, used by name


@pytest.mark.parametrize("stage", ["before-commit", "after-commit"])
def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing_once_restarted(
    stage: str, s: Settings, redis_client: redis.Redis, log: Path
) -> None:
    bodies = run_events(1000)
    fill(redis_client, s.stream, bodies)

    first = start_consumer_process(s, log, {"METASTREAM_TEST_HOOK": f"{stage}:kill"})
    assert first.wait(60) == -signal.SIGKILL, output(log)
    committed = head(s.db)
    assert committed == (200 if stage == "after-commit" else 0)
    assert pending(redis_client, s.stream, s.group) >= 200  # read, never acked

    second = start_consumer_process(s, log)  # another name: it reclaims the dead one's entries
    try:
        wait_for_sync(lambda: head(s.db) == 1000, 60, second)
        wait_for_sync(lambda: pending(redis_client, s.stream, s.group) == 0, 30, second)
    finally:
        assert stop_process(second) == 0, output(log)
    assert "reclaimed" in output(log)
    assert_exactly_once(s.db, bodies, redis_client, s)


def test_sigterm_lets_the_batch_in_progress_finish_and_be_acked(
    s: Settings, redis_client: redis.Redis, log: Path, tmp_path: Path
) -> None:
    bodies = run_events(1000)
    fill(redis_client, s.stream, bodies)
    mark = tmp_path / "in-batch"
    process = start_consumer_process(
        s,
        log,
        {"METASTREAM_TEST_HOOK": "after-commit:sleep:1.5", "METASTREAM_TEST_HOOK_MARK": str(mark)},
    )
    try:
        wait_for_sync(mark.exists, 60, process)  # committed, not yet acked, sleeping
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, output(log)
    finally:
        stop_process(process)
    # Everything it read was written and acked; what it did not read is still there.
    assert pending(redis_client, s.stream, s.group) == 0
    done = log_ids(s.db)
    assert 200 <= len(done) == len(set(done)) < 1000
    group = next(g for g in redis_client.xinfo_groups(s.stream) if g["name"] == s.group.encode())
    assert group["entries-read"] == len(done)
    assert "shut down gracefully" in output(log)

    again = start_consumer_process(s, log)
    try:
        wait_for_sync(lambda: head(s.db) == 1000, 60, again)
    finally:
        assert stop_process(again) == 0, output(log)
    assert_exactly_once(s.db, bodies, redis_client, s)


RUN_MODULE_APP = """
import asyncio
from metastream.consumer.app import app  # what `faststream run metastream.consumer.app:app` loads
asyncio.run(app.run())
"""


@pytest.mark.parametrize("how", ["faststream-cli", "module-app"])
def test_the_module_level_app_consumes_as_the_environment_says(
    how: str, s: Settings, redis_client: redis.Redis, log: Path
) -> None:
    if how == "faststream-cli":
        pytest.importorskip("typer", reason="the FastStream CLI needs faststream[cli]")
        command = [str(Path(sys.executable).with_name("faststream")), "run"]
        command.append("metastream.consumer.app:app")
    else:
        command = [sys.executable, "-c", RUN_MODULE_APP]
    bodies = run_events(300)
    fill(redis_client, s.stream, bodies)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=consumer_env(s),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_sync(lambda: head(s.db) == 300, 60, process)
        wait_for_sync(lambda: pending(redis_client, s.stream, s.group) == 0, 30, process)
    finally:
        assert stop_process(process) == 0, output(log)
    assert_exactly_once(s.db, bodies, redis_client, s)


def test_a_consumer_that_cannot_reach_redis_says_so_in_one_line(s: Settings) -> None:
    env = consumer_env(s.with_(redis_url="redis://127.0.0.1:1/0"))
    done = subprocess.run(
        [sys.executable, "-m", "metastream", "consume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("metastream: Redis at redis://127.0.0.1:1/0 does not answer")
    assert "Traceback" not in done.stderr
