"""compose.yaml and the Dockerfile, checked without a Docker engine.

Each command they run must be a real ``metastream`` command (parsed with
the CLI's own argparse parser), Redis must persist (AOF, a volume) and be
healthy before the consumers start, and the consumers must share one
database volume.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from metastream.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def parse_command(command: list[str] | str) -> argparse.Namespace:
    """A ``metastream ...`` command line, parsed as the CLI would."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[0] == "metastream", argv
    args = _parser().parse_args(argv[1:])
    assert callable(getattr(args, "handler", None)), f"{argv} is not a command"
    return args


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"redis", "consumer"}


def test_redis_persists_and_reports_health(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    (volume,) = redis["volumes"]
    name, target = volume.split(":")
    assert target == "/data"
    assert name in compose["volumes"]
    check = redis["healthcheck"]
    assert check["test"][:2] == ["CMD", "redis-cli"]
    assert check["test"][2:] == ["ping"]
    assert {"interval", "timeout", "retries"} <= set(check)


def test_consumers_share_a_database_and_wait_for_redis(compose: dict[str, Any]) -> None:
    consumer = compose["services"]["consumer"]
    assert consumer["build"] == "."
    args = parse_command(consumer["command"])
    assert args.command == "consume"
    assert consumer["depends_on"]["redis"]["condition"] == "service_healthy"
    env = consumer["environment"]
    assert env["METASTREAM_REDIS_URL"] == "redis://redis:6379/0"
    (volume,) = consumer["volumes"]
    name, target = volume.split(":")
    assert name in compose["volumes"]
    assert env["METASTREAM_DB"].startswith(target + "/")
    assert consumer["deploy"]["replicas"] >= 2  # per-process consumer names make this safe
    assert consumer["stop_signal"] == "SIGTERM"
    grace = consumer["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > 15  # the consumer's graceful timeout
    check = consumer["healthcheck"]
    assert check["test"][0] == "CMD"
    assert parse_command(check["test"][1:]).command == "status"


def test_every_named_volume_is_used(compose: dict[str, Any]) -> None:
    used = {v.split(":")[0] for service in compose["services"].values() for v in service["volumes"]}
    assert used == set(compose["volumes"])


def dockerfile() -> list[tuple[str, str]]:
    """``(instruction, arguments)`` of each instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_dockerfile_installs_the_package_and_runs_the_consumer() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.12-slim")
    runs = " && ".join(rest for instruction, rest in steps if instruction == "RUN")
    assert "pip install /tmp/metastream" in runs
    copies = [rest for instruction, rest in steps if instruction == "COPY"]
    assert copies == [". /tmp/metastream"]
    (cmd,) = [rest for instruction, rest in steps if instruction == "CMD"]
    assert parse_command(yaml.safe_load(cmd)).command == "consume"
    assert ("USER", "metastream") in steps


def test_dockerignore_lets_in_only_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!metastream/"} <= set(rules)
