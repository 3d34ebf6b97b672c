"""Starting a process, is one alive, and stopping one: what the local stack and its users need."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from metastream.private_files import UMASK, open_private_append


def start_detached(
    argv: list[str], log: Path, *, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (Ctrl-C in the terminal does not reach it), its
    stdout and stderr appended to ``log`` (made 0600), no stdin, under :data:`UMASK` (what it
    creates, a database, its WAL, spool files, is the owner's only)."""
    log_fd = open_private_append(log)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            umask=UMASK,
        )
    finally:
        os.close(log_fd)


def consumer_name(pid: int | None = None) -> str:
    """A consumer's name in its group: ``<hostname>-<pid>`` (this process's by default).

    One name per process, so that ``faststream run --workers N``, compose
    replicas and restarts never share one; the stack and ``status`` read the
    pid back from it (:func:`local_consumer_pid`).
    """
    return f"{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def local_consumer_pid(name: str) -> int | None:
    """The pid in consumer ``name`` if it was named by :func:`consumer_name` on this machine."""
    host, _, pid = name.rpartition("-")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped by someone else (Linux only).

    A detached process's parent is gone, and whoever adopts it may take a
    while to reap it (seconds, in some containers): it has stopped all the
    same.
    """
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == ["Z"]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, from the state (field 3)
    on; ``None`` where there is no such file. (The command name is in parentheses and
    may hold spaces, so the fields are counted from its closing parenthesis.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux); ``None`` where unknown.

    A pid and its start time name one process for good: a later process
    that reuses the pid starts later.
    """
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None  # starttime is field 22
    except (IndexError, ValueError):
        return None


def same_process(pid: int, start: int | None) -> bool:
    """Whether ``pid`` is alive and, if ``start`` is known, still the process that started then."""
    if pid <= 0 or not pid_alive(pid):
        return False
    if start is None:
        return True
    now = start_time(pid)
    return now is None or now == start


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it is still there after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
