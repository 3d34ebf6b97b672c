"""``metastream status``: is the stack up, and how far has the consumer got?

Everything is read, nothing changed: the server (URL with the password
masked, version, up, down, or refusing our password), the stream's length,
each consumer group's lag (entries not yet delivered) and pending count
(delivered, not yet acked), the consumers (those of this machine whose
process is gone marked so), the dead letters, the spool (events waiting on
this machine to be sent), a problem the consumer reported, and on the
SQLite side the log's head and each projection's checkpoint. It works the
same for the local stack (found through ``stack.json``) and for any Redis
named by ``METASTREAM_REDIS_URL`` (a compose deployment). A ``stack.json``
whose server is gone is reported as a crashed stack, with what of it still
runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from metastream import config
from metastream.config import Settings, StackProcess, stack_process, stack_processes
from metastream.errors import StoreError
from metastream.processes import local_consumer_pid, pid_alive
from metastream.urls import connection_problem


@dataclass
class GroupStatus:
    name: str
    pending: int
    lag: int | None
    """Entries not yet delivered to the group; ``None`` when Redis cannot tell (or < 7)."""
    consumers: list[ConsumerStatus]


@dataclass
class ConsumerStatus:
    name: str
    pending: int
    idle: float
    """Seconds since it last read."""
    gone: bool = False
    """A consumer of this machine (``host-pid``) whose process has exited."""


@dataclass
class SpoolStatus:
    """Events spooled on this machine, waiting to be sent (``producer.spool.spool_summary``)."""

    files: int
    events: int
    oldest_age_s: float | None
    set_aside: int


@dataclass
class StackStatus:
    url: str | None
    """The URL in use, with its password (render it with ``urls.mask_url``)."""
    source: str
    """Where the URL came from: ``stack.json`` or ``METASTREAM_REDIS_URL``."""
    up: bool = False
    version: str | None = None
    error: str | None = None
    """Why Redis could not be used, in one sentence, the password masked."""
    auth_failed: bool = False
    server_pid: int | None = None
    consumer_pid: int | None = None
    consumer_alive: bool | None = None
    projector_pid: int | None = None
    """The stack's projector process (it writes the views), when the stack records one."""
    projector_alive: bool | None = None
    ui_pid: int | None = None
    """The stack's dashboard process (``metastream ui``), when the stack records one."""
    ui_url: str | None = None
    ui_answers: bool | None = None
    """Whether the dashboard answered its status call (``None``: not asked)."""
    crashed_stack: list[StackProcess] | None = None
    """The stack file's processes, when the file is there but its server is gone."""
    spool: SpoolStatus | None = None
    consumer_problem: str | None = None
    """Why the consumer stopped by itself (``consumer.stopped.consumer_problem``)."""
    stream: str = ""
    stream_length: int | None = None
    groups: list[GroupStatus] = field(default_factory=list)
    dead_letter_stream: str = ""
    dead_letters: int | None = None
    db: Path | None = None
    head: int | None = None
    checkpoints: dict[str, int] = field(default_factory=dict)
    db_error: str | None = None

    @property
    def healthy(self) -> bool:
        """The server answers and, for a local stack, its consumer and projector are alive."""
        return self.up and self.consumer_alive is not False and self.projector_alive is not False


def _read_ui(status: StackStatus, recorded: dict[str, Any]) -> None:
    """The dashboard the stack started, and whether it answers (it is optional: not health)."""
    ui = stack_process(recorded, "ui")
    if ui is None or not isinstance(recorded.get("ui_url"), str):
        return
    from metastream.api.settings import UiSettings
    from metastream.stack.ui import answers

    status.ui_pid = ui.pid
    status.ui_url = str(recorded["ui_url"])
    status.ui_answers = ui.alive() and answers(status.ui_url, UiSettings.from_env().token)


def _server_version(info: dict[str, Any]) -> str:
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def _gone(name: str) -> bool:
    """Whether consumer ``name`` (``host-pid``) ran on this machine and has exited."""
    pid = local_consumer_pid(name)
    return pid is not None and not pid_alive(pid)


def _groups(client: redis.Redis, stream: str) -> list[GroupStatus]:
    out = []
    for group in client.xinfo_groups(stream):
        name = group["name"].decode()
        consumers = []
        for c in client.xinfo_consumers(stream, name):
            consumer = c["name"].decode()
            consumers.append(
                ConsumerStatus(consumer, int(c["pending"]), int(c["idle"]) / 1000, _gone(consumer))
            )
        lag = group.get("lag")
        out.append(
            GroupStatus(
                name=name,
                pending=int(group["pending"]),
                lag=None if lag is None else int(lag),
                consumers=consumers,
            )
        )
    return out


def gather(settings: Settings, *, db: Path | None = None) -> StackStatus:
    """The status of the stack ``settings`` point at; ``db`` overrides the recorded database."""
    recorded = config.load_stack_file(settings)
    stack = config.read_stack_file(settings)
    url = config.redis_url(settings)
    status = StackStatus(
        url=url,
        source="METASTREAM_REDIS_URL" if settings.redis_url else "stack.json",
        stream=settings.stream,
        dead_letter_stream=settings.dead_letter_stream,
        db=db or settings.db,
    )
    if recorded is not None and stack is None:
        status.crashed_stack = stack_processes(recorded)
    if recorded is not None and (stack is not None or settings.redis_url is None):
        server = stack_process(recorded, "server")
        status.server_pid = server.pid if server is not None else None
        consumer = stack_process(recorded, "consumer")
        if consumer is not None:
            status.consumer_pid = consumer.pid
            status.consumer_alive = consumer.alive()
        projector = stack_process(recorded, "projector")
        if projector is not None:
            status.projector_pid = projector.pid
            status.projector_alive = projector.alive()
        _read_ui(status, recorded)
        if db is None and isinstance(recorded.get("db"), str):
            status.db = Path(str(recorded["db"]))
        if isinstance(recorded.get("stream"), str):
            status.stream = str(recorded["stream"])
    if url is not None:
        _read_redis(status, url)
    _read_db(status)
    status.spool = _spool(settings)
    status.consumer_problem = _consumer_problem(settings.with_(db=status.db or settings.db))
    return status


def _read_redis(status: StackStatus, url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        status.version = _server_version(client.info("server"))
        status.up = True
        status.stream_length = int(client.xlen(status.stream))
        if status.stream_length or client.exists(status.stream):
            status.groups = _groups(client, status.stream)
        status.dead_letters = int(client.xlen(status.dead_letter_stream))
    except (redis.RedisError, OSError) as exc:
        status.error = connection_problem(exc, url)
        status.auth_failed = isinstance(exc, redis.AuthenticationError)
    finally:
        client.close()


def _spool(settings: Settings) -> SpoolStatus:
    from metastream.producer.summary import spool_summary

    summary = spool_summary(settings.spool_dir)
    return SpoolStatus(
        files=summary.files,
        events=summary.events,
        oldest_age_s=summary.oldest_age_s,
        set_aside=summary.set_aside,
    )


def _consumer_problem(settings: Settings) -> str | None:
    from metastream.consumer.stopped import consumer_problem

    return consumer_problem(settings)


def _read_db(status: StackStatus) -> None:
    from metastream.query import Reader

    if status.db is None or not status.db.exists():
        status.db_error = "no database yet"
        return
    try:
        with Reader(status.db) as reader:
            status.checkpoints = reader.checkpoints()  # the views' own, wherever the log is
            status.head = reader.head()
    except StoreError as exc:
        status.db_error = str(exc)
