"""The projector as a process of its own: SIGKILL mid-run, SIGTERM, quarantine, the CLI.

No Redis needed: the log is written directly, as the consumer would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from metastream.benchmarks.synthetic import generate
from metastream.eventlog import sqlite as logdb
from metastream.eventlog.sqlite import open_connection, transaction
from metastream.projections import Projector
from metastream.query import Reader
from tests.events import Pipeline, incoming
from tests.streams import cli, wait_for_sync
from tests.unit.views import VIEW_TABLES, dump

TABLES = (*VIEW_TABLES, "quarantine")


def write_log(path: Path, events: list[object]) -> int:
    """Append ``events`` to the log at ``path`` (created with empty views); the head."""
    conn = open_connection(path)
    try:
        Projector().prepare(conn)
        for start in range(0, len(events), 5000):
            with transaction(conn):
                logdb.append(conn, incoming(*events[start : start + 5000]))  # type: ignore[arg-type]
        return logdb.head(conn)
    finally:
        conn.close()


def checkpoints(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, position FROM checkpoints").fetchall())
    finally:
        db.close()


def start_projector(path: Path, *extra: str) -> subprocess.Popen[bytes]:
    with (path.parent / "projector.log").open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "metastream.projections", "--db", str(path), *extra],
            stdout=subprocess.DEVNULL,
            stderr=output,
            env={k: v for k, v in os.environ.items() if not k.startswith("METASTREAM_")},
        )


def replayed(tmp_path: Path, source: Path) -> dict[str, object]:
    """The views of a fresh replay of the log at ``source``."""
    copy = tmp_path / f"replay-{uuid.uuid4().hex}.db"
    src = sqlite3.connect(source)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    conn = open_connection(copy)
    try:
        projector = Projector()
        projector.prepare(conn)
        projector.reset(conn, projector.projections)
        while projector.step(conn)[0]:
            pass
    finally:
        conn.close()
    return dump(copy, TABLES)


def test_a_projector_killed_mid_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    head = write_log(db, list(generate(60_000, seed=11)))
    process = start_projector(db)
    try:
        # Killed once it has committed something and before it is done.
        wait_for_sync(lambda: checkpoints(db).get("latest", 0) > 0, 30, process)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    at_kill = checkpoints(db)
    assert process.returncode == -signal.SIGKILL
    assert 0 < min(at_kill.values()) < head, at_kill  # it really died mid-run
    again = start_projector(db)
    try:
        wait_for_sync(lambda: min(checkpoints(db).values()) == head, 60, again)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0
    assert dump(db, TABLES) == replayed(tmp_path, db)


def test_an_event_a_projection_cannot_apply_is_quarantined_and_the_views_go_on(
    tmp_path: Path,
) -> None:
    """A projection that raises on one event: that event is skipped with its reason, listed
    by ``metastream project --quarantined``, and the events after it reach the views."""
    db = tmp_path / "m.db"
    p = Pipeline()
    events = [p.started(), p.on_run(a=1), p.on_run(a=2), p.on_run(b=3)]
    write_log(db, events)
    bomb = tmp_path / "bomb.py"  # the latest view, with a bug that meets the key "a" = 2
    bomb.write_text(
        "import sys, msgspec\n"
        "from metastream.projections.latest import LatestProjection\n"
        "real = LatestProjection.apply\n"
        "def apply(self, conn, records):\n"
        "    for _, e in records:\n"
        "        m = getattr(e, 'metadata', {})\n"
        "        if 'a' in m and msgspec.msgpack.decode(m['a']) == 2:\n"
        "            raise KeyError('a bug meets a=2')\n"
        "    real(self, conn, records)\n"
        "LatestProjection.apply = apply\n"
        "from metastream.cli.projector import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(bomb), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_sync(lambda: min(checkpoints(db).values()) == 4, 30, process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0
    assert b"cannot apply the event at position 3 (KeyError: 'a bug meets a=2')" in err
    listed = cli("project", "--quarantined", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    event_id = uuid.UUID(bytes=incoming(events[2])[0].event.event_id)
    assert line == f"position 3  event {event_id}  latest: KeyError: 'a bug meets a=2'"
    db_conn = sqlite3.connect(db)
    try:
        rows = dict(db_conn.execute("SELECT key, value FROM latest").fetchall())
    finally:
        db_conn.close()
    assert set(rows) == {"a", "b"}  # a=1 applied, a=2 skipped, b=3 after it applied
    with Reader(db) as reader:  # what Client.wait_for and `metastream rejections` read
        (aside,) = reader.set_aside()
    assert (aside.position, aside.event_id, aside.rejected) == (3, event_id, True)
    assert aside.reason == "quarantined by the latest view: KeyError: 'a bug meets a=2'"
    assert aside.target.startswith("pipeline run")
    from metastream.schemas import decode_value

    assert decode_value(rows["a"]) == 1


def test_a_projector_started_before_the_database_exists_waits_for_it(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    process = start_projector(db)
    try:
        p = Pipeline()
        head = write_log(db, [p.started(), p.on_run(x=1)])
        wait_for_sync(lambda: min(checkpoints(db).values()) == head, 30, process)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_projector_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "m.db"
    write_log(db, [Pipeline().started()])
    process = start_projector(db)
    wait_for_sync(lambda: min(checkpoints(db).values()) == 1, 30, process)
    process.send_signal(sig)
    assert process.wait(20) == 0
