"""The dashboard as a process of the local stack: ``metastream ui``, started by ``up``.

It serves the views over HTTP (``METASTREAM_UI_HOST``/``_PORT``, 127.0.0.1:8237
by default) and needs no Redis. It is the one process of the stack the
stack can do without: if it cannot start (its port is taken, an address off
loopback without a token), ``up`` says why and runs the rest.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from metastream.api.settings import UiSettings, check_exposure
from metastream.config import Settings
from metastream.processes import start_detached

UI_LOG: Final = "ui.log"
READY_TIMEOUT: Final = 30.0
"""Seconds the dashboard may take to answer (imports, opening the database)."""


def ui_log(settings: Settings) -> Path:
    return settings.home / UI_LOG


def spawn_ui(settings: Settings, ui: UiSettings, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``metastream ui`` over the stack's database, detached, its output in ``ui.log``.

    It waits for the database (up to ``READY_TIMEOUT``): a foreground ``up``
    starts it before its consumer has made one.
    """
    check_exposure(ui)  # refuse here, with the ui's own message, rather than in its log
    argv = [sys.executable, "-m", "metastream", "--db", str(settings.db), "ui"]
    argv += ["--host", ui.host, "--port", str(ui.port), "--wait", str(READY_TIMEOUT)]
    return start_detached(argv, ui_log(settings), env=env, cwd=settings.home)


def answers(url: str, token: str | None, timeout: float = 2.0) -> bool:
    """Whether the dashboard at ``url`` answers its status call."""
    request = urllib.request.Request(url + "api/v1/status")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ui_ready(
    process: subprocess.Popen[bytes], url: str, token: str | None, timeout: float = READY_TIMEOUT
) -> str | None:
    """``None`` once the dashboard answers; else why it did not (it exited, or took too long)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with code {process.returncode}"
        if answers(url, token, timeout=1.0):
            return None
        time.sleep(0.1)
    return f"it did not answer within {timeout:.0f} s"
