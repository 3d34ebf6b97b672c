"""``open_event_log``: the SQLite log by default, a registered backend by URL scheme."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from metastream.config import Settings
from metastream.errors import StoreError
from metastream.eventlog import (
    EventLog,
    MemoryEventLog,
    SqliteEventLog,
    open_event_log,
    open_log_source,
    register_backend,
    unregister_backend,
)
from metastream.eventlog import open as opening

opened: list[tuple[str, Settings]] = []


async def open_memory(url: str, settings: Settings) -> EventLog:
    """A backend: what an entry point names, and what tests register."""
    opened.append((url, settings))
    return MemoryEventLog()


@pytest.fixture(autouse=True)
def _no_backends_left() -> Iterator[None]:
    opened.clear()
    yield
    for scheme in ("memory", "plugged"):
        unregister_backend(scheme)


def test_the_setting_comes_from_the_environment() -> None:
    assert Settings.from_env({"METASTREAM_HOME": "/h"}).event_log is None
    env = {"METASTREAM_HOME": "/h", "METASTREAM_EVENT_LOG": "postgresql://u@db/ms"}
    assert Settings.from_env(env).event_log == "postgresql://u@db/ms"


async def test_by_default_it_is_the_sqlite_log_in_the_database_file(settings: Settings) -> None:
    log = await open_event_log(settings)
    try:
        assert isinstance(log, SqliteEventLog)
        assert log.db._executor is None  # inline: the consumer's SQL in its own thread
        assert settings.db.exists()
        await log.append_encoded([])
        assert log.problem() is None
        settings.db.unlink()
        assert log.problem() is not None  # the file's identity was recorded
    finally:
        await log.close()


async def test_a_registered_backend_opens_urls_of_its_scheme(settings: Settings) -> None:
    register_backend("memory", open_memory)
    s = settings.with_(event_log="Memory://somewhere/log")
    log = await open_event_log(s)
    try:
        assert isinstance(log, MemoryEventLog)
        assert opened == [("Memory://somewhere/log", s)]
        assert not settings.db.exists()  # the SQLite file was left alone
    finally:
        await log.close()


async def test_an_unknown_scheme_is_a_clear_error_naming_the_known_ones(
    settings: Settings,
) -> None:
    register_backend("memory", open_memory)
    s = settings.with_(event_log="postgresql://ms:s3cret@db.example/ms")
    with pytest.raises(StoreError) as raised:
        await open_event_log(s)
    message = str(raised.value)
    assert "no event log backend for postgresql://" in message
    assert "known schemes: memory" in message
    assert "METASTREAM_EVENT_LOG=postgresql://ms:***@db.example/ms" in message
    assert "s3cret" not in message
    assert f"Leave METASTREAM_EVENT_LOG unset for the SQLite log in {s.db}" in message
    assert not settings.db.exists()


async def test_with_no_backend_at_all_the_error_says_so(settings: Settings) -> None:
    with pytest.raises(StoreError, match="known schemes: none is installed"):
        await open_event_log(settings.with_(event_log="postgresql://db/ms"))


async def test_a_value_that_is_not_a_url_is_refused(settings: Settings) -> None:
    with pytest.raises(StoreError, match="METASTREAM_EVENT_LOG is not a URL"):
        await open_event_log(settings.with_(event_log=str(settings.db)))


async def test_an_installed_entry_point_is_a_backend_without_any_import(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugged = EntryPoint(
        name="plugged", value=f"{__name__}:open_memory", group=opening.ENTRY_POINTS
    )

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [plugged] if group == opening.ENTRY_POINTS else []

    monkeypatch.setattr(opening, "entry_points", entry_points)
    assert opening.backends() == ["plugged"]
    log = await open_event_log(settings.with_(event_log="plugged://x"))
    try:
        assert isinstance(log, MemoryEventLog)
        assert [url for url, _ in opened] == ["plugged://x"]
    finally:
        await log.close()


def test_the_database_path_stays_a_path(tmp_path: Path) -> None:
    """The URL has its own setting: ``METASTREAM_DB`` keeps meaning the SQLite file."""
    env = {"METASTREAM_HOME": str(tmp_path), "METASTREAM_EVENT_LOG": "memory://x"}
    assert Settings.from_env(env).db == tmp_path / "metastream.db"


def test_the_projector_reads_the_database_file_unless_a_log_is_named(settings: Settings) -> None:
    assert open_log_source(settings) is None  # the log beside the views, same connection
    memory = MemoryEventLog()
    register_backend("memory", open_memory, lambda url, s: memory.source())
    source = open_log_source(settings.with_(event_log="memory://x"))
    assert source is not None
    assert source.head() == 0
