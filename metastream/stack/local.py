"""``metastream up`` / ``down``: a Redis server, a consumer and a projector on this machine.

What ``up`` leaves under ``METASTREAM_HOME`` (``~/.metastream``, mode 0700;
every file in it 0600):

* ``redis/``: the server's data (AOF on: the stream holds events not yet in
  the log, so it must survive a restart), its log ``redis/server.log`` and
  ``redis/server.conf`` (the password);
* ``stack.json``: where the stack listens and every process it started
  (``redis_url`` with the password in it, ``processes``, ``db``, ``stream``,
  ``started``; see ``metastream.config.stack_processes``). Producers find
  the stack through it (``config.redis_url``); it is written once every
  process is ready and removed by ``down``;
* ``consumer.log``: the detached consumer's output; ``projector.log``: the
  projector's (the process that applies the log to the views);
* the database, ``metastream.db``, unless ``METASTREAM_DB`` says otherwise.

Redis requires a password generated at each ``up``; it is in ``stack.json``
only, which other users cannot read, and is masked wherever a URL is shown.

The consumer appends to the event log and acks; the projector, a process
of its own (``python -m metastream.projections``), follows the log and
writes the views, so the two use both cores. In the foreground, the
consumer runs in this very process and the server and the projector in
sessions of their own, so that Ctrl-C reaches the consumer only: it
finishes and acks its batch, then the projector is stopped (it commits the
batch in hand) and the server. Detached, every process is in a session of
its own and outlives the command.

``down`` stops the processes in the reverse of the order they started (the
projector and the consumer gracefully with SIGTERM, then the server, which
flushes its AOF).
``up`` first looks at the last stack file: if its server is gone (Redis
crashed), whatever else that stack started is stopped before a new stack
starts, so no consumer is left reading a dead port. A process is signalled
only while it is still the one recorded (same pid and start time, see
:func:`_is_ours`).
"""

from __future__ import annotations

import datetime
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import redis

from metastream.config import (
    Settings,
    StackProcess,
    load_stack_file,
    read_stack_file,
    stack_process,
    stack_processes,
)
from metastream.constants import PROJECTOR_ENV
from metastream.errors import MetastreamError
from metastream.private_files import (
    make_private_dir,
    tighten_dir,
    write_private_text,
)
from metastream.processes import consumer_name, start_detached, start_time, stop_pid
from metastream.stack.server import RedisServer, problem
from metastream.urls import connection_problem, mask_url, scrub

Say = Callable[[str], None]

CONSUMER_LOG: Final = "consumer.log"
PROJECTOR_LOG: Final = "projector.log"
PROJECTOR_READY: Final = "projector (pid {pid}): following"
"""What the projector logs once it has opened the database and is applying the log."""
READY_TIMEOUT: Final = 60.0
"""Seconds a detached consumer may take to start reading (imports, catching up the views)."""
STOP_TIMEOUT: Final = 40.0
"""Seconds before SIGKILL: the consumer's graceful timeout (15 s) and its shutdown, with margin."""
PASSWORD_BYTES: Final = 24
"""Random bytes in the generated Redis password (32 URL-safe characters)."""

STOP_TIMEOUTS: Final = {"server": 15.0}
"""Seconds each role gets to stop after SIGTERM before SIGKILL; others get ``STOP_TIMEOUT``."""
COMMAND_MARKERS: Final = {"server": (b"redis", b"valkey")}
"""What the command line of a recorded process must contain, where its start time is unknown
(a stack file written before start times were recorded); other roles: ``metastream``."""

# Detached processes outlive the call that started them on purpose. Keeping
# their Popen objects stops Python from warning, when one is collected, that
# its process "is still running".
_DETACHED: list[subprocess.Popen[bytes]] = []


class StackError(MetastreamError, RuntimeError):
    """The local stack could not be started or stopped."""


def consumer_log(settings: Settings) -> Path:
    return settings.home / CONSUMER_LOG


def projector_log(settings: Settings) -> Path:
    return settings.home / PROJECTOR_LOG


def running(settings: Settings) -> dict[str, Any] | None:
    """The stack file's contents if the stack's server is alive, else ``None``."""
    return read_stack_file(settings)


def dead_consumer(record: dict[str, Any]) -> int | None:
    """The pid of a running stack's consumer if that consumer is gone."""
    consumer = stack_process(record, "consumer")
    return consumer.pid if consumer is not None and not consumer.alive() else None


def _process(role: str, pid: int) -> StackProcess:
    return StackProcess(role, pid, start_time(pid))


def _record(
    settings: Settings, url: str, processes: list[StackProcess], dashboard: str | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "redis_url": url,
        "processes": [p._asdict() for p in processes],
    }
    for p in processes:  # the two every script knows, by their old names
        record.setdefault(f"{p.role}_pid", p.pid)
    record.update(
        db=str(settings.db),
        stream=settings.stream,
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        home=str(settings.home),
        consumer_log=str(consumer_log(settings)),
    )
    if dashboard is not None:
        record["ui_url"] = dashboard
    return record


def _write_stack_file(settings: Settings, record: dict[str, Any]) -> None:
    import json

    make_private_dir(settings.home)
    write_private_text(settings.stack_file, json.dumps(record, indent=2) + "\n")


def _remove_stack_file(settings: Settings, owner: StackProcess) -> None:
    """Remove the stack file if it still records ``owner`` (not a newer stack's file)."""
    record = load_stack_file(settings)
    if record is not None and owner in stack_processes(record):
        settings.stack_file.unlink(missing_ok=True)


def _prepare_home(settings: Settings, say: Say) -> None:
    """METASTREAM_HOME and its ``redis/`` 0700: created so, or tightened (saying so)."""
    for directory in (settings.home, settings.redis_dir):
        make_private_dir(directory)
        old = tighten_dir(directory)
        if old is not None:
            say(
                f"note: {directory} was open to other users (mode {old:o}); "
                "made it 0700 (owner only)"
            )


def _start_server(settings: Settings, say: Say) -> RedisServer:
    server = RedisServer(
        settings.redis_dir,
        port=settings.port,
        binary=settings.redis_server,
        password=secrets.token_urlsafe(PASSWORD_BYTES),
    )
    say(f"starting redis ({Path(server.binary).name}) with its data in {settings.redis_dir} ...")
    # Its own session: Ctrl-C in the terminal must not stop it before the consumer.
    server.start(detach=True)
    if server.process is not None:
        _DETACHED.append(server.process)
    return server


def _warn_env(settings: Settings, say: Say) -> None:
    if settings.redis_url:
        say(
            f"note: METASTREAM_REDIS_URL={mask_url(settings.redis_url)} is set; producers in "
            "this environment publish there, not to this stack"
        )


def _announce(
    settings: Settings,
    url: str,
    processes: list[StackProcess],
    dashboard: tuple[StackProcess, str] | None,
    say: Say,
    details: str,
) -> None:
    """Record the stack (``stack.json``: producers find it from now on) and say what runs:
    redis, then ``details``, the dashboard, and a note if the environment points elsewhere."""
    address = None
    if dashboard is not None:
        processes.append(dashboard[0])
        address = dashboard[1]
    _write_stack_file(settings, _record(settings, url, processes, address))
    say(f"metastream is up: redis at {mask_url(url)}{details}")
    if dashboard is not None:
        say(f"dashboard: {address} (pid {dashboard[0].pid})")
    _warn_env(settings, say)


def up_foreground(settings: Settings, say: Say = print, *, dashboard: bool = True) -> None:
    """Run the stack until Ctrl-C (or SIGTERM, or ``metastream down``)."""
    from metastream.consumer import run
    from metastream.consumer.app import GRACEFUL_TIMEOUT

    server = _start_server(settings, say)
    me = _process("consumer", os.getpid())
    projector: subprocess.Popen[bytes] | None = None
    shown: tuple[StackProcess, str] | None = None
    try:
        projector = _spawn_projector(settings, server.url)
        processes = [_process("server", server.pid or 0), me, _process("projector", projector.pid)]
        if dashboard:
            shown = _start_ui(settings, server.url, say, wait=False)
        details = (
            f", database {settings.db}, projector pid {projector.pid} "
            f"(log: {projector_log(settings)})"
        )
        _announce(settings, server.url, processes, shown, say, details)
        say(
            "consuming in this terminal; Ctrl-C stops the consumer, the projector, the dashboard, "
            "then redis "
            f"(a batch in progress gets up to {GRACEFUL_TIMEOUT:.0f} s to finish)"
        )
        # The stack runs the projector: the consumer starts none of its own.
        run(settings.with_(redis_url=server.url), environ={**os.environ, PROJECTOR_ENV: "0"})
    finally:
        if shown is not None:
            say("stopping the dashboard ...")
            stop_pid(shown[0].pid, STOP_TIMEOUT)
        if projector is not None:
            say("stopping the projector ...")
            stop_pid(projector.pid, STOP_TIMEOUT)
        say("stopping redis ...")
        server.stop()
        _remove_stack_file(settings, me)
        say("metastream is down")


def _stack_env(settings: Settings, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        METASTREAM_HOME=str(settings.home),
        METASTREAM_DB=str(settings.db),
        METASTREAM_REDIS_URL=url,  # the environment of a process is its owner's only
        METASTREAM_STREAM=settings.stream,
        METASTREAM_GROUP=settings.group,
    )
    return env


def _spawn_projector(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    """The stack's projector: ``python -m metastream.projections``, detached, its log its own."""
    argv = [sys.executable, "-m", "metastream.projections"]
    process = start_detached(
        argv, projector_log(settings), env=_stack_env(settings, url), cwd=settings.home
    )
    _DETACHED.append(process)
    return process


def _wait_projector_ready(
    settings: Settings, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Wait until the projector says it follows the database (it logs so once it has it open)."""
    path = projector_log(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"the projector exited with code {process.returncode} "
                f"({_last_line(path) or 'no output'}); see {path}"
            )
        try:
            if PROJECTOR_READY.format(pid=process.pid).encode() in path.read_bytes():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise StackError(f"the projector did not start within {timeout:.0f} s; see {path}")


def _start_ui(
    settings: Settings, url: str, say: Say, *, wait: bool = True
) -> tuple[StackProcess, str] | None:
    """The dashboard (``metastream ui``); ``None`` (said why) if it cannot run.

    With ``wait``, returns once it answers; without (a foreground ``up``, whose
    consumer makes the database only once it runs), once it has started.
    """
    from metastream.api.settings import UiSettings
    from metastream.stack import ui

    try:
        chosen = UiSettings.from_env()
        process = ui.spawn_ui(settings, chosen, _stack_env(settings, url))
    except (ValueError, OSError) as exc:
        say(f"warning: the dashboard is not started: {exc}")
        return None
    _DETACHED.append(process)
    address = chosen.url
    if not wait:
        return _process("ui", process.pid), address
    trouble = ui.wait_ui_ready(process, address, chosen.token)
    if trouble is not None:
        stop_pid(process.pid, STOP_TIMEOUT)
        last = _last_line(ui.ui_log(settings))
        say(
            f"warning: the dashboard is not running: {trouble} ({last or 'no output'}); "
            f"the rest of the stack runs without it (see {ui.ui_log(settings)})"
        )
        return None
    return _process("ui", process.pid), address


def _spawn_consumer(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    env = _stack_env(settings, url)
    env[PROJECTOR_ENV] = "0"  # the stack runs the projector as a process of its own
    argv = [sys.executable, "-m", "metastream.consumer"]
    process = start_detached(argv, consumer_log(settings), env=env, cwd=settings.home)
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
    name = consumer_name(process.pid).encode()
    client = redis.Redis.from_url(url, socket_timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last = scrub(_last_line(consumer_log(settings)), url)
                raise StackError(
                    f"the consumer exited with code {process.returncode} "
                    f"({last or 'no output'}); see {consumer_log(settings)}"
                )
            try:
                consumers = client.xinfo_consumers(settings.stream, settings.group)
            except redis.AuthenticationError as exc:
                raise StackError(connection_problem(exc, url)) from None
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


def up_detached(
    settings: Settings, say: Say = print, timeout: float = READY_TIMEOUT, *, dashboard: bool = True
) -> None:
    """Start the server, a consumer, a projector and the dashboard in the background.

    Returns once all are ready; the dashboard is left out (with a warning) if it cannot run.
    """
    server = _start_server(settings, say)
    started: list[subprocess.Popen[bytes]] = []
    try:
        say("starting the consumer and the projector ...")
        process = _spawn_consumer(settings, server.url)
        started.append(process)
        _wait_consumer_ready(settings, server.url, process, timeout)
        projector = _spawn_projector(settings, server.url)
        started.append(projector)
        _wait_projector_ready(settings, projector, timeout)
    except BaseException:
        for p in reversed(started):
            stop_pid(p.pid, STOP_TIMEOUT)
        server.stop()
        raise
    processes = [
        _process("server", server.pid or 0),
        _process("consumer", process.pid),
        _process("projector", projector.pid),
    ]
    shown = _start_ui(settings, server.url, say) if dashboard else None
    details = (
        f" (pid {server.pid}), consumer pid {process.pid} (log: {consumer_log(settings)}), "
        f"projector pid {projector.pid} (log: {projector_log(settings)}), database {settings.db}"
    )
    _announce(settings, server.url, processes, shown, say, details)


def _clear_dead_stack(settings: Settings, record: dict[str, Any], say: Say) -> None:
    """Stop what is left of a stack whose server is gone, and remove its stack file."""
    server = stack_process(record, "server")
    pid = f" (pid {server.pid})" if server is not None else ""
    say(f"the last stack's redis{pid} is gone: it crashed or was killed")
    left = [p for p in stack_processes(record) if _is_ours(p)]
    if left:
        say("stopping what is left of it before starting anew:")
        _stop(left, lambda line: say(f"  {line}"))
    settings.stack_file.unlink(missing_ok=True)


def up(settings: Settings, *, detach: bool, say: Say = print, dashboard: bool = True) -> bool:
    """Start the stack; ``False`` (and nothing started) if it is already up.

    A stack file whose server is gone is cleared first: the processes that
    stack started and that still run (its consumer, reading a dead port) are
    stopped.
    """
    record = load_stack_file(settings)
    if record is not None and read_stack_file(settings) is not None:
        url = str(record["redis_url"])
        say(f"metastream is already up at {mask_url(url)}")
        trouble = problem(url, timeout=2.0)
        if trouble is not None:
            say(f"warning: {trouble}")
        consumer = dead_consumer(record)
        if consumer is not None:
            say(
                f"warning: its consumer (pid {consumer}) is not running: "
                "restart with `metastream down && metastream up`"
            )
        return False
    if record is not None:
        _clear_dead_stack(settings, record, say)
    _prepare_home(settings, say)
    if detach:
        up_detached(settings, say, dashboard=dashboard)
    else:
        up_foreground(settings, say, dashboard=dashboard)
    return True


def _cmdline(pid: int) -> bytes | None:
    """The process's command line (Linux), ``None`` where /proc is not there."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b"" if Path("/proc/self").exists() else None
    except OSError:
        return None


def _is_ours(process: StackProcess) -> bool:
    """Whether the recorded ``process`` is alive and still the process the stack started.

    A pid recorded long ago may belong to another program by now: never
    signal it. The start time recorded with the pid settles it; without one
    (an older stack file), the command line must look like ours.
    """
    if process.pid == os.getpid() or not process.alive():
        return False
    if process.start is not None and start_time(process.pid) is not None:
        return True  # alive() compared the start times
    cmdline = _cmdline(process.pid)
    markers = COMMAND_MARKERS.get(process.role, (b"metastream",))
    return cmdline is None or any(m in cmdline for m in markers)


def _named(process: StackProcess) -> str:
    return {"server": "redis", "ui": "the dashboard"}.get(process.role, f"the {process.role}")


def _stop(processes: list[StackProcess], say: Say) -> None:
    """Stop ``processes`` in the reverse of their start order (the server last)."""
    for p in reversed(processes):
        if not _is_ours(p):  # gone meanwhile (a foreground stack stops its own server)
            continue
        say(f"stopping {_named(p)} (pid {p.pid}) ...")
        stop_pid(p.pid, STOP_TIMEOUTS.get(p.role, STOP_TIMEOUT))


def down(settings: Settings, say: Say = print) -> bool:
    """Stop every process the stack started (the consumer first, the server last).

    ``False`` if no stack file was there.
    """
    record = load_stack_file(settings)
    if record is None:
        say("metastream is not up")
        return False
    recorded = stack_processes(record)
    ours = [p for p in recorded if _is_ours(p)]
    for p in recorded:
        if p in ours or p.pid == os.getpid():
            continue
        if p.alive():
            say(f"{_named(p)} (pid {p.pid}): that pid is another program's now; left alone")
        else:
            say(f"{_named(p)} (pid {p.pid}) was already gone")
    _stop(ours, say)
    settings.stack_file.unlink(missing_ok=True)
    say("metastream is down")
    return True
