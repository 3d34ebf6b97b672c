"""``metastream up`` / ``down``: a Redis server and a consumer on this machine, no set-up.

What ``up`` leaves under ``METASTREAM_HOME`` (``~/.metastream``):

* ``redis/``: the server's data (AOF on: the stream holds events not yet in
  the log, so it must survive a restart) and its log, ``redis/server.log``;
* ``stack.json``: where the stack listens and its processes (``redis_url``,
  ``server_pid``, ``consumer_pid``, ``db``, ``stream``, ``started``).
  Producers find the stack through it (``config.redis_url``); it is written
  once both processes are ready and removed by ``down``;
* ``consumer.log``: the detached consumer's output;
* the database, ``metastream.db``, unless ``METASTREAM_DB`` says otherwise.

In the foreground, the consumer runs in this very process and the server in
a session of its own, so that Ctrl-C reaches the consumer only: it finishes
and acks its batch, and only then is the server stopped. Detached, both are
processes of their own sessions and outlive the command; ``down`` stops the
consumer first (SIGTERM: graceful), then the server (SIGTERM: it flushes its
AOF).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import redis

from metastream.config import Settings, load_stack_file, read_stack_file
from metastream.errors import MetastreamError
from metastream.stack.server import RedisServer, pid_alive, stop_pid

Say = Callable[[str], None]

CONSUMER_LOG: Final = "consumer.log"
READY_TIMEOUT: Final = 60.0
"""Seconds a detached consumer may take to start reading (imports, catching up the views)."""
STOP_TIMEOUT: Final = 40.0
"""Seconds before SIGKILL: the consumer's graceful timeout (15 s) and its shutdown, with margin."""

# Detached processes outlive the call that started them on purpose. Keeping
# their Popen objects stops Python from warning, when one is collected, that
# its process "is still running".
_DETACHED: list[subprocess.Popen[bytes]] = []


class StackError(MetastreamError, RuntimeError):
    """The local stack could not be started or stopped."""


def consumer_log(settings: Settings) -> Path:
    return settings.home / CONSUMER_LOG


def running(settings: Settings) -> dict[str, Any] | None:
    """The stack file's contents if the stack's server is alive, else ``None``."""
    return read_stack_file(settings)


def dead_consumer(record: dict[str, Any]) -> int | None:
    """The pid of a running stack's consumer if that consumer is gone."""
    consumer = record.get("consumer_pid")
    return consumer if isinstance(consumer, int) and not pid_alive(consumer) else None


def _write_stack_file(settings: Settings, record: dict[str, Any]) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.stack_file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # readers never see half a file


def _record(settings: Settings, url: str, server_pid: int, consumer_pid: int) -> dict[str, Any]:
    return {
        "redis_url": url,
        "server_pid": server_pid,
        "consumer_pid": consumer_pid,
        "db": str(settings.db),
        "stream": settings.stream,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "home": str(settings.home),
        "consumer_log": str(consumer_log(settings)),
    }


def _start_server(settings: Settings, say: Say) -> RedisServer:
    server = RedisServer(settings.redis_dir, port=settings.port, binary=settings.redis_server)
    say(f"starting redis ({Path(server.binary).name}) with its data in {settings.redis_dir} ...")
    # Its own session: Ctrl-C in the terminal must not stop it before the consumer.
    server.start(detach=True)
    if server.process is not None:
        _DETACHED.append(server.process)
    return server


def _warn_env(settings: Settings, say: Say) -> None:
    if settings.redis_url:
        say(
            f"note: METASTREAM_REDIS_URL={settings.redis_url} is set; producers in this "
            "environment publish there, not to this stack"
        )


def up_foreground(settings: Settings, say: Say = print) -> None:
    """Run the stack until Ctrl-C (or SIGTERM, or ``metastream down``)."""
    from metastream.consumer import run

    server = _start_server(settings, say)
    try:
        _write_stack_file(settings, _record(settings, server.url, server.pid or 0, os.getpid()))
        say(f"metastream is up: redis at {server.url}, database {settings.db}")
        _warn_env(settings, say)
        say("consuming in this terminal; Ctrl-C stops the consumer, then redis")
        run(settings.with_(redis_url=server.url))
    finally:
        say("stopping redis ...")
        server.stop()
        settings.stack_file.unlink(missing_ok=True)
        say("metastream is down")


def _spawn_consumer(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        METASTREAM_HOME=str(settings.home),
        METASTREAM_DB=str(settings.db),
        METASTREAM_REDIS_URL=url,
        METASTREAM_STREAM=settings.stream,
        METASTREAM_GROUP=settings.group,
    )
    log_path = consumer_log(settings)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "metastream.consumer"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=settings.home,
            start_new_session=True,
        )
    _DETACHED.append(process)
    return process


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _wait_consumer_ready(
    settings: Settings, url: str, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Wait until the consumer reads from its group (it shows in XINFO CONSUMERS)."""
    name = f"{socket.gethostname()}-{process.pid}".encode()
    client = redis.Redis.from_url(url, socket_timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last = _last_line(consumer_log(settings))
                raise StackError(
                    f"the consumer exited with code {process.returncode} "
                    f"({last or 'no output'}); see {consumer_log(settings)}"
                )
            try:
                consumers = client.xinfo_consumers(settings.stream, settings.group)
            except redis.ResponseError:  # no stream or group yet
                consumers = []
            if any(c["name"] == name for c in consumers):
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise StackError(
        f"the consumer did not start reading within {timeout:.0f} s; see {consumer_log(settings)}"
    )


def up_detached(settings: Settings, say: Say = print, timeout: float = READY_TIMEOUT) -> None:
    """Start the server and a consumer process in the background; return once both are ready."""
    server = _start_server(settings, say)
    try:
        say("starting the consumer ...")
        process = _spawn_consumer(settings, server.url)
        try:
            _wait_consumer_ready(settings, server.url, process, timeout)
        except BaseException:
            stop_pid(process.pid, STOP_TIMEOUT)
            raise
    except BaseException:
        server.stop()
        raise
    _write_stack_file(settings, _record(settings, server.url, server.pid or 0, process.pid))
    say(
        f"metastream is up: redis at {server.url} (pid {server.pid}), "
        f"consumer pid {process.pid} (log: {consumer_log(settings)}), database {settings.db}"
    )
    _warn_env(settings, say)


def up(settings: Settings, *, detach: bool, say: Say = print) -> bool:
    """Start the stack; ``False`` (and nothing started) if it is already up."""
    current = running(settings)
    if current is not None:
        say(f"metastream is already up at {current['redis_url']}")
        consumer = dead_consumer(current)
        if consumer is not None:
            say(
                f"warning: its consumer (pid {consumer}) is not running: "
                "restart with `metastream down && metastream up`"
            )
        return False
    settings.home.mkdir(parents=True, exist_ok=True)
    if detach:
        up_detached(settings, say)
    else:
        up_foreground(settings, say)
    return True


def _cmdline(pid: int) -> bytes | None:
    """The process's command line (Linux), ``None`` where /proc is not there."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b"" if Path("/proc/self").exists() else None
    except OSError:
        return None


def _is_ours(pid: int, *needles: bytes) -> bool:
    """Whether ``pid`` is alive and still the process the stack file names.

    A pid recorded long ago may belong to another program by now: never
    signal a process whose command line does not look like ours.
    """
    if pid <= 0 or not pid_alive(pid):
        return False
    cmdline = _cmdline(pid)
    return cmdline is None or any(n in cmdline for n in needles)


def down(settings: Settings, say: Say = print) -> bool:
    """Stop the consumer (gracefully), then the server; ``False`` if nothing was up."""
    record = load_stack_file(settings)
    if record is None:
        say("metastream is not up")
        return False
    consumer = record.get("consumer_pid")
    if isinstance(consumer, int) and consumer != os.getpid() and _is_ours(consumer, b"metastream"):
        say(f"stopping the consumer (pid {consumer}) ...")
        stop_pid(consumer, STOP_TIMEOUT)
    server = record.get("server_pid")
    if isinstance(server, int) and _is_ours(server, b"redis", b"valkey"):
        say(f"stopping redis (pid {server}) ...")
        stop_pid(server)
    settings.stack_file.unlink(missing_ok=True)
    say("metastream is down")
    return True
