"""``metastream ui`` as a process: serves the database, stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from metastream.api.serving import free_port
from tests.api.sample import Sample


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ui_serves_then_stops_on_a_signal(sample: Sample, sig: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "metastream", "--db", str(sample.path), "ui", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        for _ in range(300):  # until it listens (bounded, not a timing claim)
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/v1/status", timeout=5).json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert status is not None, "metastream ui never answered"
        assert status["applied_through"] == status["head"] > 0
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/stream", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            process.send_signal(sig)
            remaining = list(lines)  # an open stream ends when the server stops
        assert any(line.startswith("id:") for line in remaining)
        _, err = process.communicate(timeout=30)
        assert f"http://127.0.0.1:{port}/" in err
        if sig == signal.SIGINT:
            assert process.returncode == 0, err
            assert "stopped" in err
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_busy_port_is_one_clear_line(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from metastream.cli import main

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["--db", str(sample.path), "ui", "--port", str(port)]) == 1
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
