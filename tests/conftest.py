"""Fixtures shared by every test.

Tests that need Redis get one server for the whole session, started from the
binary metastream itself uses (``metastream.stack.server``) on a free port,
with its data in a temporary directory; each test gets its own stream name.
The machine's own Redis (port 6379) is never used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.stack.server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def stream() -> str:
    """A stream name no other test uses."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh METASTREAM_HOME, with every other METASTREAM_ variable cleared."""
    import os

    for name in list(os.environ):
        if name.startswith("METASTREAM_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("METASTREAM_HOME", str(home))
    # A stack the test starts serves its dashboard on a port of its own, never 8237.
    from metastream.stack.server import free_port

    monkeypatch.setenv("METASTREAM_UI_PORT", str(free_port()))
    return home


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.from_env()


@pytest.fixture(autouse=True)
def _no_open_sqlite_connections() -> Iterator[None]:
    """Fail the test that leaves a database connection's thread open (``eventlog.Database``).

    Its worker thread is not a daemon: left open, it hangs pytest at exit,
    far from the test that caused it.
    """
    import threading
    import time

    def workers() -> set[threading.Thread]:
        return {
            t
            for t in threading.enumerate()
            if t.is_alive()
            and ("_connection_worker_thread" in t.name or t.name.startswith("metastream-db"))
        }

    before = workers()
    yield
    deadline = time.monotonic() + 2.0
    while (leaked := workers() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked, f"the test left {len(leaked)} database connection(s) open"


@pytest.fixture(autouse=True)
def _fresh_run_names() -> Iterator[None]:
    """Each test starts with no run names known to this process (run names are unique)."""
    from metastream.pipelines.runs import local_names

    def forget() -> None:
        with local_names.lock:
            local_names.runs.clear()
            local_names.steps.clear()
            local_names.models.clear()

    forget()
    yield
    forget()


@pytest.fixture(autouse=True, scope="session")
def _reap_detached_stack_processes() -> Iterator[None]:
    """Collect the exit status of stack processes started in this process by the tests.

    ``metastream up --detach`` keeps the ``Popen`` of each process it starts,
    which outlive it on purpose; the tests stop them, and without a last poll
    here each would be reported at interpreter exit as "still running", after
    pytest's summary line.
    """
    yield
    import sys

    local = sys.modules.get("metastream.stack.local")
    for process in getattr(local, "_DETACHED", []):
        process.poll()
