"""Settings from the environment, and finding the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metastream.config import Settings, read_stack_file, redis_url


def test_defaults_follow_metastream_home() -> None:
    s = Settings.from_env({"METASTREAM_HOME": "/data/ms"})
    assert s.db == Path("/data/ms/metastream.db")
    assert s.spool_dir == Path("/data/ms/spool")
    assert (s.stream, s.group, s.dead_letter_stream) == (
        "metastream:events",
        "metastream",
        "metastream:dead",
    )
    assert (s.max_value_bytes, s.max_records, s.redis_url) == (65536, 1000, None)


def test_without_metastream_home_it_is_in_the_users_home() -> None:
    assert Settings.from_env({}).home == Path.home() / ".metastream"


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "METASTREAM_HOME": "/h",
            "METASTREAM_DB": "/elsewhere/m.db",
            "METASTREAM_REDIS_URL": "unix:///run/redis.sock",
            "METASTREAM_STREAM": "s",
            "METASTREAM_GROUP": "g",
            "METASTREAM_DEAD_LETTER_STREAM": "d",
            "METASTREAM_MAX_VALUE_BYTES": "10",
            "METASTREAM_MAX_QUEUE_BYTES": "4096",
            "METASTREAM_LINGER_MS": "0",
            "METASTREAM_BATCH_SIZE": "7",
            "METASTREAM_EXIT_TIMEOUT": "2",
            "METASTREAM_MAX_RECORDS": "9",
            "METASTREAM_CLAIM_IDLE_MS": "11",
            "METASTREAM_MAX_DELIVERIES": "3",
            "METASTREAM_RETENTION": "100",
            "METASTREAM_REDIS_SERVER": "redis-server",
            "METASTREAM_PORT": "7000",
        }
    )
    assert s == Settings(
        home=Path("/h"),
        db=Path("/elsewhere/m.db"),
        redis_url="unix:///run/redis.sock",
        stream="s",
        group="g",
        dead_letter_stream="d",
        max_value_bytes=10,
        max_queue_bytes=4096,
        linger_ms=0,
        batch_size=7,
        exit_timeout=2.0,
        max_records=9,
        claim_idle_ms=11,
        max_deliveries=3,
        retention=100,
        redis_server="redis-server",
        port=7000,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("METASTREAM_MAX_RECORDS", "many", "METASTREAM_MAX_RECORDS='many' is not a whole number"),
        ("METASTREAM_MAX_RECORDS", "0", "METASTREAM_MAX_RECORDS='0' must be at least 1"),
        ("METASTREAM_LINGER_MS", "-1", "must be at least 0"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({name: value})


def test_the_local_stack_is_found_while_its_server_lives(tmp_path: Path) -> None:
    s = Settings.from_env({"METASTREAM_HOME": str(tmp_path)})
    assert read_stack_file(s) is None
    assert redis_url(s) is None
    record = {"redis_url": "redis://127.0.0.1:1234/0", "server_pid": os.getpid()}
    s.stack_file.write_text(json.dumps(record))
    assert redis_url(s) == "redis://127.0.0.1:1234/0"
    assert redis_url(s.with_(redis_url="redis://other:1/0")) == "redis://other:1/0"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record["server_pid"] = int(gone.stdout)
    s.stack_file.write_text(json.dumps(record))
    assert redis_url(s) is None  # a stale file from a crashed stack is ignored
    s.stack_file.write_text("{not json")
    assert read_stack_file(s) is None
