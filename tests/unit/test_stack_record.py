"""What ``stack.json`` records and whom ``down`` may signal; private files; status lines.

No server: the recorded processes are plain ``sleep``-like Python processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metastream.cli.stack import render
from metastream.config import Settings, StackProcess, read_stack_file, stack_processes
from metastream.private_files import (
    create_private_file,
    make_private_dir,
    open_private_append,
    tighten_dir,
    write_private_text,
)
from metastream.processes import pid_alive, start_time
from metastream.stack.local import down
from metastream.stack.status import ConsumerStatus, GroupStatus, SpoolStatus, StackStatus


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes to record in a stack file; killed afterwards if still alive."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _sleeper(started: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *argv],
        stdin=subprocess.DEVNULL,
    )
    started.append(process)
    return process


def _gone_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_down_never_signals_a_pid_that_another_process_took(
    settings: Settings, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    ours = _sleeper(sleepers, "metastream")
    stranger = _sleeper(sleepers, "metastream")  # looks like ours, but started at another time
    start = start_time(ours.pid)
    assert start is not None
    settings.home.mkdir()
    record = {
        "redis_url": "redis://127.0.0.1:1/0",
        "processes": [
            {"role": "server", "pid": _gone_pid(), "start": 1},
            {"role": "consumer", "pid": stranger.pid, "start": start - 1},
            {"role": "ui", "pid": ours.pid, "start": start},
        ],
    }
    settings.stack_file.write_text(json.dumps(record))
    lines: list[str] = []
    assert down(settings, say=lines.append)
    assert ours.wait(30) is not None  # stopped
    assert stranger.poll() is None, "a process that only reused a recorded pid was signalled"
    assert f"stopping the dashboard (pid {ours.pid}) ..." in lines
    assert f"the consumer (pid {stranger.pid}) was already gone" in lines
    assert not settings.stack_file.exists()


def test_a_stack_file_of_an_older_metastream_is_read_and_stopped_with_care(
    settings: Settings, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    consumer = _sleeper(sleepers, "metastream-consumer")
    other = _sleeper(sleepers, "someone-else")
    settings.home.mkdir()
    record = {"redis_url": "redis://127.0.0.1:1/0", "server_pid": other.pid}
    record["consumer_pid"] = consumer.pid
    settings.stack_file.write_text(json.dumps(record))
    assert stack_processes(record) == [
        StackProcess("server", other.pid),
        StackProcess("consumer", consumer.pid),
    ]
    assert read_stack_file(settings) is not None  # its "server" pid is alive
    assert down(settings, say=lambda _: None)
    assert consumer.wait(30) is not None
    # Without a start time, a recorded server must look like redis/valkey to be signalled.
    assert other.poll() is None


def test_a_server_pid_taken_by_another_process_is_not_a_running_stack(
    settings: Settings, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    other = _sleeper(sleepers)
    settings.home.mkdir()
    started = start_time(other.pid)
    assert started is not None
    record = {
        "redis_url": "redis://127.0.0.1:1/0",
        "processes": [{"role": "server", "pid": other.pid, "start": started + 5}],
    }
    settings.stack_file.write_text(json.dumps(record))
    assert read_stack_file(settings) is None
    record["processes"] = [{"role": "server", "pid": other.pid, "start": started}]
    settings.stack_file.write_text(json.dumps(record))
    assert read_stack_file(settings) is not None
    assert pid_alive(other.pid)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        home = make_private_dir(tmp_path / "a" / "home" / "spool").parent
        assert _mode(home) == 0o700
        assert _mode(home.parent) == 0o700  # parents created on the way too
        db = home / "x.db"
        create_private_file(db)
        assert _mode(db) == 0o600
        log = home / "consumer.log"
        log.write_text("from an older version\n")
        log.chmod(0o644)
        os.close(open_private_append(log))
        assert _mode(log) == 0o600
        target = home / "stack.json"
        write_private_text(target, "{}")
        assert _mode(target) == 0o600
        assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []
        open_home = tmp_path / "open"
        open_home.mkdir(mode=0o755)
        open_home.chmod(0o755)
        assert tighten_dir(open_home) == 0o755
        assert _mode(open_home) == 0o700
        assert tighten_dir(open_home) is None
    finally:
        os.umask(old)


def test_status_masks_the_password_and_hides_consumers_long_gone() -> None:
    status = StackStatus(
        url="redis://:s3cret@127.0.0.1:7000/0",
        source="stack.json",
        up=True,
        version="valkey 8.1.8",
        server_pid=10,
        stream="metastream:events",
        stream_length=5,
        groups=[
            GroupStatus(
                name="metastream",
                pending=3,
                lag=0,
                consumers=[
                    ConsumerStatus("vm-1", 0, 1.0),
                    ConsumerStatus("vm-2", 0, 9000.0, gone=True),
                    ConsumerStatus("vm-3", 3, 60.0, gone=True),
                ],
            )
        ],
        dead_letter_stream="metastream:dead",
        dead_letters=0,
        spool=SpoolStatus(files=2, events=1500, oldest_age_s=90.0, set_aside=1),
        db_error="no database yet",
    )
    text = "\n".join(render(status))
    assert "s3cret" not in text
    assert "redis://:***@127.0.0.1:7000/0  up" in text
    assert "consumers 1 (+2 of this machine gone)" in text
    assert "vm-1  pending 0" in text
    assert "vm-2" not in text  # gone, holding nothing
    assert "vm-3  GONE, pending 3" in text  # gone, holding entries a live one will claim
    assert "spool      1,500 events in 2 files, oldest 1 min 30 s old; 1 files SET ASIDE" in text


def test_status_of_a_crashed_stack_says_so() -> None:
    status = StackStatus(
        url=None,
        source="stack.json",
        consumer_pid=42,
        consumer_alive=True,
        crashed_stack=[StackProcess("server", 41), StackProcess("consumer", 42)],
        db_error="no database yet",
    )
    text = "\n".join(render(status))
    assert "no stack.json" not in text
    assert "crashed (its redis, pid 41, is gone)" in text
    assert "pid 42  STILL RUNNING" in text
