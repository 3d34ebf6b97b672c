"""The local stack after a crash, and locked down: ``up``, ``down``, ``status``, ``consume`` as run.

Real processes: ``metastream up --detach`` starts the packaged server and a
consumer in a METASTREAM_HOME under the test's tmp_path, on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from metastream.config import Settings
from metastream.processes import pid_alive
from tests.integration.stack_fixture import stack_home
from tests.streams import eventually, fill, head, run_events

pytestmark = pytest.mark.redis

__all__ = ["stack_home"]  # a fixture, used by name


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``metastream ARGS`` in a process of its own, this environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "metastream", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _record(settings: Settings) -> dict[str, Any]:
    data = json.loads(settings.stack_file.read_text())
    assert isinstance(data, dict)
    return data


def _pids(record: dict[str, Any]) -> dict[str, int]:
    if "processes" not in record:  # as written before the list existed
        return {"server": record["server_pid"], "consumer": record["consumer_pid"]}
    return {p["role"]: p["pid"] for p in record["processes"]}


def _up(*extra: str) -> subprocess.CompletedProcess[str]:
    started = cli("up", "--detach", *extra)
    assert started.returncode == 0, started.stdout + started.stderr
    return started


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _without_password(url: str) -> str:
    return "redis://" + url.rpartition("@")[2]


def _password(url: str) -> str:
    return url.split("://:", 1)[1].rpartition("@")[0]


def test_up_after_a_redis_crash_stops_the_old_consumer_and_down_stops_everything(
    stack_home: Path,
) -> None:
    settings = Settings.from_env()
    _up()
    old = _pids(_record(settings))
    assert set(old) == {"server", "consumer", "projector", "ui"}

    os.kill(old["server"], signal.SIGKILL)  # Redis crashes; its consumer keeps running
    assert eventually(lambda: not pid_alive(old["server"]))
    assert pid_alive(old["consumer"])

    crashed = cli("status")
    assert crashed.returncode == 1
    assert "no stack.json" not in crashed.stdout
    assert "crashed" in crashed.stdout
    assert f"pid {old['consumer']}  STILL RUNNING" in crashed.stdout
    assert "metastream up" in crashed.stderr

    again = _up()
    assert f"redis (pid {old['server']}) is gone" in again.stdout
    assert f"stopping the consumer (pid {old['consumer']})" in again.stdout
    assert f"stopping the projector (pid {old['projector']})" in again.stdout
    assert f"stopping the dashboard (pid {old['ui']})" in again.stdout  # it held the port
    assert "dashboard: http://" in again.stdout  # and the new stack's serves on it
    assert not pid_alive(old["consumer"]), "the old stack's consumer still runs"
    assert not pid_alive(old["projector"]), "the old stack's projector still runs"
    new = _pids(_record(settings))
    assert all(pid_alive(pid) for pid in new.values())
    assert set(new.values()).isdisjoint(old.values())

    # The new stack works: what is published reaches the log.
    record = _record(settings)
    client = redis.Redis.from_url(record["redis_url"])
    try:
        fill(client, record["stream"], run_events(100))
    finally:
        client.close()
    assert eventually(lambda: head(settings.db) == 100, 30)

    stopped = cli("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.index("stopping the consumer") < stopped.stdout.index("stopping redis")
    left = [pid for pid in (*old.values(), *new.values()) if pid_alive(pid)]
    assert not left, f"processes of the stack left running: {left}"
    assert not settings.stack_file.exists()


def test_down_stops_what_is_left_of_a_crashed_stack(stack_home: Path) -> None:
    settings = Settings.from_env()
    _up()
    pids = _pids(_record(settings))
    os.kill(pids["server"], signal.SIGKILL)
    assert eventually(lambda: not pid_alive(pids["server"]))

    stopped = cli("down")
    assert stopped.returncode == 0
    assert f"redis (pid {pids['server']}) was already gone" in stopped.stdout
    assert f"stopping the consumer (pid {pids['consumer']})" in stopped.stdout
    assert not pid_alive(pids["consumer"])
    assert not settings.stack_file.exists()


def test_the_stack_is_private_and_its_redis_needs_the_password(stack_home: Path) -> None:
    stack_home.mkdir(mode=0o755)
    stack_home.chmod(0o755)  # a home made by an older metastream
    settings = Settings.from_env()
    started = _up()
    assert "made it 0700" in started.stdout
    record = _record(settings)
    url = record["redis_url"]
    password = _password(url)
    assert len(password) >= 32

    client = redis.Redis.from_url(url)
    try:
        fill(client, record["stream"], run_events(200))
        assert eventually(lambda: head(settings.db) == 200, 30)
        aof_dir = settings.redis_dir / "appendonlydir"
        assert Path(str(client.config_get("dir")["dir"])) == settings.redis_dir
    finally:
        client.close()

    # Owner only: the home and its directories 0700, every file 0600.
    assert _mode(stack_home) == 0o700
    for directory in (settings.redis_dir, aof_dir):
        assert _mode(directory) == 0o700, directory
    wal = settings.db.with_name(settings.db.name + "-wal")
    shm = settings.db.with_name(settings.db.name + "-shm")
    files = [settings.db, wal, shm, settings.stack_file, stack_home / "consumer.log"]
    files += [settings.redis_dir / "server.log", settings.redis_dir / "server.conf"]
    files += list(aof_dir.iterdir())
    for path in files:
        assert path.exists(), path
        assert _mode(path) == 0o600, f"{path} is {_mode(path):o}"
    # The password is not on the server's command line, which every user can read.
    cmdline = Path(f"/proc/{_pids(record)['server']}/cmdline").read_bytes()
    assert password.encode() not in cmdline

    # A client without the password, or with a wrong one, is refused.
    for wrong in (_without_password(url), url.replace(password, "guess")):
        stranger = redis.Redis.from_url(wrong, socket_timeout=5)
        try:
            with pytest.raises(redis.AuthenticationError):
                stranger.xlen(record["stream"])
        finally:
            stranger.close()

    # No command shows the password; refusals are reported as such.
    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "redis://:***@127.0.0.1" in status.stdout
    refused = cli("status", env={"METASTREAM_REDIS_URL": url.replace(password, "guess")})
    assert refused.returncode == 1
    assert "refused the password" in refused.stdout + refused.stderr
    assert "does not answer" not in refused.stdout + refused.stderr
    anonymous = cli("status", env={"METASTREAM_REDIS_URL": _without_password(url)})
    assert anonymous.returncode == 1
    assert "needs a password" in anonymous.stderr
    consumer = cli("consume", env={"METASTREAM_REDIS_URL": url.replace(password, "guess")})
    assert consumer.returncode == 1
    assert "refused the password" in consumer.stderr
    assert "guess" not in consumer.stdout + consumer.stderr
    already = cli("up", "--detach")
    assert "already up at redis://:***@" in already.stdout
    # stack.json says a wrong password (edited by hand): up says so
    settings.stack_file.write_text(json.dumps({**record, "redis_url": url.replace(password, "x")}))
    tampered = cli("up", "--detach")
    assert "refused the password" in tampered.stdout
    settings.stack_file.write_text(json.dumps(record))
    stopped = cli("down")
    for run in (started, status, refused, anonymous, already, tampered, stopped):
        assert password not in run.stdout + run.stderr
    assert password not in (stack_home / "consumer.log").read_text()


def test_a_consumer_elsewhere_finds_the_password_in_stack_json(stack_home: Path) -> None:
    """Every process of the user reaches the locked stack through ``stack.json``."""
    settings = Settings.from_env()
    _up()
    publish = (  # what a producer does to find the stack: config.redis_url
        "import redis\n"
        "from metastream import config\n"
        "from metastream.config import Settings\n"
        "from tests.streams import fill, run_events\n"
        "s = Settings.from_env()\n"
        "fill(redis.Redis.from_url(config.redis_url(s)), s.stream, run_events(10))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "METASTREAM_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-c", publish], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert eventually(lambda: head(settings.db) == 10, 30)
    assert cli("down").returncode == 0


def test_status_shows_the_spool_and_why_the_consumer_stopped(home: Path) -> None:
    """Events spooled by a producer that could not reach Redis, seen by ``status``."""
    publish = (
        "import uuid\n"
        "from metastream.pipelines import emit\n"
        "from metastream.schemas import RunStarted\n"
        "for i in range(25):\n"
        "    emit.publish(RunStarted(run_id=uuid.uuid4(), name=f'r{i}', pipeline_name='p'))\n"
    )
    nowhere = {"METASTREAM_REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-c", publish],
        env={**os.environ, **nowhere, "METASTREAM_EXIT_TIMEOUT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stderr
    assert _mode(home) == 0o700  # made by the producer, on the way to its spool

    from metastream.consumer.stopped import record_stop

    record_stop(Settings.from_env(), "the database at x was deleted while the consumer ran")
    status = cli("status")
    assert status.returncode == 1
    assert "spool      25 events in 1 files, oldest" in status.stdout
    assert "the database at x was deleted" in status.stdout
    down_status = cli("status", env=nowhere)
    assert "refused the password" not in down_status.stdout
    assert "Redis at redis://:***@127.0.0.1:1/0 does not answer" in down_status.stdout
    assert "s3cret" not in down_status.stdout + down_status.stderr
