"""Serving the app: uvicorn that ends open event streams on stop, and a server in a thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _committed(app: Any) -> Any:
    """The app's ``Committed`` (through wrappers that keep the app as ``.app``), if any."""
    while app is not None:
        state = getattr(app, "state", None)
        if state is not None and "committed" in state:
            return state["committed"]
        app = getattr(app, "app", None)
    return None


class UiServer(uvicorn.Server):
    """uvicorn's server, ending the app's event streams as soon as it is asked to stop."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        committed = _committed(self.config.app)
        if committed is not None:
            committed.end_streams()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        committed = _committed(self.config.app)
        if committed is not None:
            committed.end_streams()
        self.should_exit = True


class BackgroundServer:
    """``with BackgroundServer(app) as server: server.url`` serves ``app`` until the block ends."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = UiServer(config)
        self.thread = threading.Thread(target=self.server.run, name="metastream-ui", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ui server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.stop()
        self.thread.join(timeout=10)
