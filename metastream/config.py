"""Settings, read from the environment once, in one place.

Each variable, what it sets, and its default (docs/configuration.md has the
whole table):

- METASTREAM_HOME: where metastream keeps its files (``~/.metastream``)
- METASTREAM_DB: the SQLite database (``$METASTREAM_HOME/metastream.db``)
- METASTREAM_EVENT_LOG: the consumer's event log as a URL, for a backend
  registered by scheme (unset: the log in the SQLite database)
- METASTREAM_REDIS_URL: redis://, rediss:// or unix:// URL (the local stack, if up)
- METASTREAM_STREAM: the stream events go to (``metastream:events``)
- METASTREAM_GROUP: the consumer group writing the log (``metastream``)
- METASTREAM_DEAD_LETTER_STREAM: where unusable entries go (``metastream:dead``)
- METASTREAM_MAX_VALUE_BYTES: largest encoded metadata value (65536)
- METASTREAM_MAX_EVENT_BYTES: largest encoded event, all its values together (1 MiB)
- METASTREAM_MAX_DEPTH: deepest nesting of containers in a metadata value (64)
- METASTREAM_MAX_QUEUE_BYTES: producer memory for unsent events (64 MiB)
- METASTREAM_LINGER_MS: how long the producer waits to fill a batch (5)
- METASTREAM_BATCH_SIZE: queued events that make a full batch, sent without lingering (1000)
- METASTREAM_EXIT_TIMEOUT: seconds a process keeps sending at exit before spooling (5)
- METASTREAM_MAX_RECORDS: entries per consumer read (1000)
- METASTREAM_CLAIM_IDLE_MS: idle time before a pending entry is reclaimed (30000)
- METASTREAM_DRAIN_SPOOL: whether a consumer sends this machine's orphaned spool files (1)
- METASTREAM_MAX_DELIVERIES: deliveries before an entry is dead-lettered (5)
- METASTREAM_RETENTION: acked stream entries kept beyond trimming (0)
- METASTREAM_REDIS_SERVER: the server binary ``metastream up`` runs (packaged valkey-server)
- METASTREAM_PORT: the port ``metastream up`` listens on (a free one)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from metastream import constants
from metastream.processes import same_process


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    db: Path
    redis_url: str | None = None
    event_log: str | None = None
    """A URL for the consumer's event log (``eventlog/open.py``); ``None``: the log in ``db``."""
    stream: str = constants.STREAM
    group: str = constants.GROUP
    dead_letter_stream: str = constants.DEAD_LETTER_STREAM
    max_value_bytes: int = 64 * 1024
    max_event_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_queue_bytes: int = 64 * 1024 * 1024
    linger_ms: int = 5
    batch_size: int = 1000
    exit_timeout: float = 5.0
    max_records: int = 1000
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    drain_spool: bool = True
    retention: int = 0
    redis_server: str | None = None
    port: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("METASTREAM_HOME") or Path.home() / constants.HOME_DIR_NAME)
        home = home.expanduser()
        db = Path(env.get("METASTREAM_DB") or home / constants.DB_FILE).expanduser()
        return cls(
            home=home,
            db=db,
            redis_url=env.get("METASTREAM_REDIS_URL") or None,
            event_log=env.get("METASTREAM_EVENT_LOG") or None,
            stream=env.get("METASTREAM_STREAM") or constants.STREAM,
            group=env.get("METASTREAM_GROUP") or constants.GROUP,
            dead_letter_stream=env.get("METASTREAM_DEAD_LETTER_STREAM")
            or constants.DEAD_LETTER_STREAM,
            max_value_bytes=_int(env, "METASTREAM_MAX_VALUE_BYTES", 64 * 1024, 1),
            max_event_bytes=_int(env, "METASTREAM_MAX_EVENT_BYTES", 1024 * 1024, 1024),
            max_depth=_int(env, "METASTREAM_MAX_DEPTH", 64, 1),
            max_queue_bytes=_int(env, "METASTREAM_MAX_QUEUE_BYTES", 64 * 1024 * 1024, 1024),
            linger_ms=_int(env, "METASTREAM_LINGER_MS", 5),
            batch_size=_int(env, "METASTREAM_BATCH_SIZE", 1000, 1),
            exit_timeout=float(_int(env, "METASTREAM_EXIT_TIMEOUT", 5)),
            max_records=_int(env, "METASTREAM_MAX_RECORDS", 1000, 1),
            claim_idle_ms=_int(env, "METASTREAM_CLAIM_IDLE_MS", 30_000, 1),
            max_deliveries=_int(env, "METASTREAM_MAX_DELIVERIES", 5, 1),
            drain_spool=_int(env, "METASTREAM_DRAIN_SPOOL", 1) != 0,
            retention=_int(env, "METASTREAM_RETENTION", 0),
            redis_server=env.get("METASTREAM_REDIS_SERVER") or None,
            port=_int(env, "METASTREAM_PORT", 0),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def spool_dir(self) -> Path:
        return self.home / constants.SPOOL_DIR

    @property
    def stack_file(self) -> Path:
        return self.home / constants.STACK_FILE

    @property
    def redis_dir(self) -> Path:
        return self.home / constants.REDIS_DIR


class StackProcess(NamedTuple):
    """A process the local stack started, as ``stack.json`` records it."""

    role: str
    """What it is: ``server``, ``consumer``, ``projector`` or ``ui``."""
    pid: int
    start: int | None = None
    """When it started (``processes.start_time``): a later process with its pid is not it."""

    def alive(self) -> bool:
        """Whether this very process is still running (not another one that took its pid)."""
        return same_process(self.pid, self.start)


def stack_processes(record: Mapping[str, Any]) -> list[StackProcess]:
    """The processes a stack file records, in the order they were started.

    From ``processes`` (``[{"role", "pid", "start"}, ...]``), or, in a file
    written before it existed, from ``server_pid`` and ``consumer_pid``.
    """
    listed = record.get("processes")
    if isinstance(listed, list):
        out = []
        for item in listed:
            if not isinstance(item, dict):
                continue
            role, pid, start = item.get("role"), item.get("pid"), item.get("start")
            if isinstance(role, str) and isinstance(pid, int) and pid > 0:
                out.append(StackProcess(role, pid, start if isinstance(start, int) else None))
        return out
    legacy = (("server", record.get("server_pid")), ("consumer", record.get("consumer_pid")))
    return [StackProcess(role, pid) for role, pid in legacy if isinstance(pid, int) and pid > 0]


def stack_process(record: Mapping[str, Any], role: str) -> StackProcess | None:
    """The first process of ``role`` in a stack file, if any."""
    return next((p for p in stack_processes(record) if p.role == role), None)


def load_stack_file(settings: Settings) -> dict[str, Any] | None:
    """What ``metastream up`` recorded in ``$METASTREAM_HOME/stack.json``, running or not.

    The file holds ``redis_url`` (with the stack's password: the file is
    0600), ``processes`` (see :func:`stack_processes`), ``server_pid`` and
    ``consumer_pid`` (for scripts), ``db``, ``stream`` and ``started``;
    ``None`` when it is missing or unreadable.
    """
    try:
        data = json.loads(settings.stack_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("redis_url"), str):
        return None
    return data


def read_stack_file(settings: Settings) -> dict[str, Any] | None:
    """The stack file (see ``load_stack_file``) if the server it names is running."""
    data = load_stack_file(settings)
    if data is None:
        return None
    server = stack_process(data, "server")
    if server is not None and not server.alive():
        return None
    return data


def redis_url(settings: Settings) -> str | None:
    """Where to publish: ``METASTREAM_REDIS_URL``, else the local stack if it is up."""
    if settings.redis_url:
        return settings.redis_url
    stack = read_stack_file(settings)
    return str(stack["redis_url"]) if stack else None
