"""``metastream status``: is the stack up, and how far has the consumer got?

Everything is read, nothing changed: the server (URL, version, up or down),
the stream's length, each consumer group's lag (entries not yet delivered)
and pending count (delivered, not yet acked), the consumers, the dead
letters, and on the SQLite side the log's head and each projection's
checkpoint. It works the same for the local stack (found through
``stack.json``) and for any Redis named by ``METASTREAM_REDIS_URL`` (a
compose deployment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from metastream import config
from metastream.config import Settings
from metastream.errors import StoreError
from metastream.stack.server import pid_alive


@dataclass
class GroupStatus:
    name: str
    pending: int
    lag: int | None
    """Entries not yet delivered to the group; ``None`` when Redis cannot tell (or < 7)."""
    consumers: list[tuple[str, int, float]]
    """``(name, pending, idle seconds)`` for each consumer."""


@dataclass
class StackStatus:
    url: str | None
    source: str
    """Where the URL came from: ``stack.json`` or ``METASTREAM_REDIS_URL``."""
    up: bool = False
    version: str | None = None
    error: str | None = None
    server_pid: int | None = None
    consumer_pid: int | None = None
    consumer_alive: bool | None = None
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
        """The server answers and, for a local stack, its consumer is alive."""
        return self.up and self.consumer_alive is not False


def _server_version(info: dict[str, Any]) -> str:
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def _groups(client: redis.Redis, stream: str) -> list[GroupStatus]:
    out = []
    for group in client.xinfo_groups(stream):
        name = group["name"].decode()
        consumers = [
            (c["name"].decode(), int(c["pending"]), int(c["idle"]) / 1000)
            for c in client.xinfo_consumers(stream, name)
        ]
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
    stack = config.read_stack_file(settings)
    url = config.redis_url(settings)
    status = StackStatus(
        url=url,
        source="METASTREAM_REDIS_URL" if settings.redis_url else "stack.json",
        stream=settings.stream,
        dead_letter_stream=settings.dead_letter_stream,
        db=db or settings.db,
    )
    if stack is not None:
        server_pid = stack.get("server_pid")
        status.server_pid = server_pid if isinstance(server_pid, int) else None
        pid = stack.get("consumer_pid")
        if isinstance(pid, int):
            status.consumer_pid = pid
            status.consumer_alive = pid_alive(pid)
        if db is None and isinstance(stack.get("db"), str):
            status.db = Path(str(stack["db"]))
        if isinstance(stack.get("stream"), str):
            status.stream = str(stack["stream"])
    if url is not None:
        _read_redis(status, url)
    _read_db(status)
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
        status.error = str(exc)
    finally:
        client.close()


def _read_db(status: StackStatus) -> None:
    from metastream.query import Reader

    if status.db is None or not status.db.exists():
        status.db_error = "no database yet"
        return
    try:
        with Reader(status.db) as reader:
            status.head = reader.head()
            status.checkpoints = reader.checkpoints()
    except StoreError as exc:
        status.db_error = str(exc)
