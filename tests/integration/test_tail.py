"""``metastream tail``: history then live events, filtered, as lines or JSON lines."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from metastream.schemas import ById, MetadataLogged, RunStarted, Uri, encode_event, prepare_metadata
from tests.integration.stack_fixture import RealStack, clean_env, real_stack
from tests.integration.subscription_helpers import log_caught_up, metric_events
from tests.streams import eventually, fill, stop_process

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name


class Lines:
    """The lines a process prints, read by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.queue.put(line.rstrip("\n"))

    def take(self, n: int, timeout: float = 30.0) -> list[str]:
        try:
            return [self.queue.get(timeout=timeout) for _ in range(n)]
        except queue.Empty:
            stop_process(self.process)  # type: ignore[arg-type]
            assert self.process.stderr is not None
            raise AssertionError(
                f"tail printed too little; its stderr:\n{self.process.stderr.read()}"
            ) from None


@contextmanager
def tail(*args: str) -> Iterator[Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", "metastream", "tail", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Lines(process)
    finally:
        code = stop_process(process)  # type: ignore[arg-type]
        assert process.stderr is not None
        err = process.stderr.read()
        process.stderr.close()
        assert process.stdout is not None
        process.stdout.close()
        assert code == 0, err


def _groups(stack: RealStack) -> set[bytes]:
    return {g["name"] for g in stack.redis.xinfo_groups(stack.settings.stream)}


def test_tail_prints_history_then_live_events_filtered_as_json_lines(real_stack: RealStack) -> None:
    stack = real_stack
    s = stack.settings
    wanted = metric_events(5, pipeline="training")
    other = metric_events(5, pipeline="other")
    fill(stack.redis, s.stream, wanted + other)
    assert eventually(lambda: log_caught_up(stack.redis, s), 20)
    with tail(
        "--from", "start", "--pipeline", "training", "--type", "MetadataLogged", "--json"
    ) as out:
        history = [json.loads(line) for line in out.take(4)]
        run_id = uuid.uuid4()
        live = [
            RunStarted(run_id=run_id, name="live", pipeline_name="training"),
            MetadataLogged(
                target=ById(kind="pipeline_run", id=run_id),
                metadata=prepare_metadata({"source": Uri("s3://b/k"), "acc": 0.5}),
            ),
        ]
        fill(stack.redis, s.stream, [encode_event(e) for e in live] + metric_events(3, "other"))
        (line,) = out.take(1)
        assert out.queue.empty()
        assert len(_groups(stack)) == 2  # the log's group and the tail's own
    assert [e["metadata"]["i"] for e in history] == [1, 2, 3, 4]
    assert {e["type"] for e in history} == {"MetadataLogged"}
    event = json.loads(line)
    assert event["event_id"] == str(live[1].id)
    assert event["metadata"] == {"source": {"$type": "uri", "value": "s3://b/k"}, "acc": 0.5}
    assert event["target"] == {"type": "id", "kind": "pipeline_run", "id": str(run_id)}
    # the tail's own group is gone with it: nothing pins the stream's trimming
    assert _groups(stack) == {s.group.encode()}


def test_tail_from_now_prints_only_new_events_as_lines(real_stack: RealStack) -> None:
    stack = real_stack
    s = stack.settings
    fill(stack.redis, s.stream, metric_events(3))
    assert eventually(lambda: log_caught_up(stack.redis, s), 20)
    with tail("--key", "loss") as out:
        assert eventually(lambda: len(_groups(stack)) == 2, 20)
        run_id = uuid.uuid4()
        target = ById(kind="pipeline_run", id=run_id)
        fill(
            stack.redis,
            s.stream,
            [
                encode_event(MetadataLogged(target=target, metadata=prepare_metadata({"acc": 1}))),
                encode_event(
                    MetadataLogged(target=target, metadata=prepare_metadata({"loss": "\x1b[2J"}))
                ),
            ],
        )
        (line,) = out.take(1)
    assert f"MetadataLogged pipeline run {run_id} loss=" in line
    assert "\x1b" not in line
    assert "loss=\\u001b[2J" in line
