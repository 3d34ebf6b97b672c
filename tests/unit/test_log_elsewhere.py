"""Views whose log is kept in another storage: readers refuse what needs the log, clearly."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from litestar.testing import TestClient

from metastream.api import create_app
from metastream.api.errors import status_and_message
from metastream.cli.stack import _log_lines
from metastream.errors import LogElsewhere
from metastream.eventlog import MemoryEventLog
from metastream.eventlog.sqlite import log_location, open_connection
from metastream.projections import Projector
from metastream.projections.follow import follow
from metastream.query import Reader
from metastream.stack.status import StackStatus, _read_db
from tests.streams import run_events

WHERE = "postgresql://ms:***@db.example/ms"


def _project(db: Path, log: MemoryEventLog, log_at: str | None) -> None:
    projector = Projector(source=log.source()) if log_at else Projector()
    follow(db, projector=projector, until=lambda: True, idle=0, log_at=log_at)


def _log_with(events: list[bytes]) -> MemoryEventLog:
    log = MemoryEventLog()
    asyncio.run(log.append_encoded(events))
    return log


def test_reads_that_need_the_log_name_where_it_is_and_the_views_still_read(
    tmp_path: Path,
) -> None:
    db = tmp_path / "views.db"
    run_id = uuid.uuid4()
    _project(db, _log_with(run_events(5, run_id=run_id, name="r1")), WHERE)
    with Reader(db) as reader:
        assert reader.log_at == WHERE
        assert reader.run("r1").run_metadata == {"i": 4}  # the views are here
        assert reader.applied_through() == 5
        for read in (
            lambda: reader.history(run_id.bytes, "i"),
            lambda: reader.as_of(run_id.bytes, position=2),
            lambda: reader.bodies(),
            reader.head,
            lambda: reader.positions_of([b"x" * 16]),
        ):
            with pytest.raises(LogElsewhere, match=r"kept at postgresql://ms:\*\*\*@db\.example"):
                read()


def test_a_projector_on_the_log_in_the_file_forgets_the_other_storage(tmp_path: Path) -> None:
    db = tmp_path / "views.db"
    _project(db, _log_with(run_events(3, name="r1")), WHERE)
    _project(db, MemoryEventLog(), None)  # the default: the log in the file itself
    conn = open_connection(db)
    try:
        assert log_location(conn) is None
    finally:
        conn.close()
    with Reader(db) as reader:
        assert reader.log_at is None
        assert reader.head() == 0


def test_the_api_status_still_answers_for_health_checks_and_history_is_501(
    tmp_path: Path,
) -> None:
    db = tmp_path / "views.db"
    run_id = uuid.uuid4()
    _project(db, _log_with(run_events(4, run_id=run_id, name="r1")), WHERE)
    with TestClient(app=create_app(db)) as client:
        status = client.get("/api/v1/status")
        assert status.status_code == 200
        assert status.json() == {"head": None, "applied_through": 4}
        history = client.get("/api/v1/runs/r1/history?key=i")
        assert history.status_code == 501
        assert "kept at postgresql://ms:***@db.example/ms" in history.json()["message"]


def test_the_api_answers_such_a_read_with_501_and_the_reason() -> None:
    assert status_and_message(LogElsewhere("the history of a key reads the event log")) == (
        501,
        "the history of a key reads the event log",
        None,
    )


def test_status_shows_the_views_checkpoints_and_where_the_log_is(tmp_path: Path) -> None:
    db = tmp_path / "views.db"
    _project(db, _log_with(run_events(4, name="r1")), WHERE)
    status = StackStatus(url=None, source="METASTREAM_REDIS_URL", db=db)
    _read_db(status)
    assert status.checkpoints == {"latest": 4, "registry": 4}
    assert status.head is None
    text = "\n".join(_log_lines(status))
    assert "kept at postgresql://ms:***@db.example/ms" in text
    assert "view latest  checkpoint 4" in text
    assert "behind" not in text
