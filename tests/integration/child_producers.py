"""Producers in processes of their own, as a user's scripts run them.

Fixtures (import them into a test module, and name them in its ``__all__``):

* ``fresh_warning`` (autouse): the producer's "Redis is unreachable" warning is
  given once per process; each test starts with it not yet given;
* ``env_for(redis_url, **extra)``: the environment of a child process that
  publishes to the test's stream with the test's ``METASTREAM_HOME``.

``run_script`` runs a Python snippet in such a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from metastream.config import Settings
from metastream.producer import sender

REPO: Path = Path(__file__).parents[2]
"""The working directory of a script, so that it can import ``tests.*``."""


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender, "_warned_unreachable", False)


@pytest.fixture
def env_for(settings: Settings, stream: str) -> Callable[..., dict[str, str]]:
    """The environment of a process that publishes to ``stream`` with our METASTREAM_HOME."""

    def make(redis_url: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_")}
        env.update(
            METASTREAM_HOME=str(settings.home),
            METASTREAM_STREAM=stream,
            METASTREAM_REDIS_URL=redis_url,
            **extra,
        )
        return env

    return make


def run_script(script: str, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -c script argv...`` to its end (a minute at most), its output captured."""
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
