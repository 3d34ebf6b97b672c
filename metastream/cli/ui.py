"""``metastream ui``: the HTTP API and the dashboard, in the foreground, over the views.

Needs no Redis: it reads the database. Loopback by default; any other
address needs ``METASTREAM_UI_TOKEN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path

from metastream.cli.common import echo, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ui", help="serve the dashboard and the HTTP API (no Redis needed)")
    p.add_argument("--host", help="address to bind (default: $METASTREAM_UI_HOST, else 127.0.0.1)")
    p.add_argument(
        "--port", type=int, help="port to listen on (default: $METASTREAM_UI_PORT, else 8237)"
    )
    p.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the database to be created (what `metastream up` does while "
        "its consumer makes it); by default a missing database is an error",
    )
    p.set_defaults(handler=_ui)


def _wait_for_database(db: Path, seconds: float) -> None:
    """Return once ``db`` is a metastream database with views, or after ``seconds``."""
    from metastream.errors import StoreError
    from metastream.query import Reader

    deadline = time.monotonic() + seconds
    said = False
    while True:
        try:
            Reader(db).close()
            return
        except StoreError:
            if time.monotonic() >= deadline:
                return  # create_app says what is wrong
        if not said:
            echo(f"metastream ui: waiting for the database {db} ...", file=sys.stderr)
            said = True
        time.sleep(0.2)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear line, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(
                f"port {port} on {host} is in use (another `metastream ui`?); "
                "pass --port or set METASTREAM_UI_PORT"
            ) from None
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _ui(args: argparse.Namespace) -> int:
    import uvicorn

    from metastream.api import UiSettings, check_exposure, create_app
    from metastream.api.serving import UiServer

    ui = UiSettings.from_env()
    ui = dataclasses.replace(
        ui, host=args.host or ui.host, port=ui.port if args.port is None else args.port
    )
    check_exposure(ui)
    db = settings(args).db
    if args.wait > 0:
        _wait_for_database(db, args.wait)
    app = create_app(db, token=ui.token)
    import gc

    gc.collect()
    gc.freeze()  # what importing left is there for good: the collector need not scan it
    listener = _listen(ui.host, ui.port)
    url = dataclasses.replace(ui, port=listener.getsockname()[1]).url
    echo(f"metastream ui: serving {db} on {url} (Ctrl-C to stop)", file=sys.stderr)
    if args.open:
        threading.Timer(1.0, webbrowser.open, (url,)).start()
    config = uvicorn.Config(
        app,
        host=ui.host,
        port=ui.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    try:
        UiServer(config).run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn raises it again once it has shut down: a normal stop
        pass
    echo("metastream ui: stopped", file=sys.stderr)
    return 0
