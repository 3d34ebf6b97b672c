"""`dead-letters list`: stream names, field names and reasons shown with controls escaped."""

from __future__ import annotations

import pytest
import redis

from metastream.cli import main
from metastream.config import Settings
from metastream.schemas.text import has_control_characters
from tests.streams import consumer_settings, running_consumer, wait_for

pytestmark = pytest.mark.redis

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\r"


async def test_dead_letters_list_escapes_what_it_shows(
    settings: Settings,
    stream: str,
    redis_url: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile_stream = stream + ESCAPES
    s = consumer_settings(settings, hostile_stream, redis_url)
    monkeypatch.setenv("METASTREAM_REDIS_URL", redis_url)
    monkeypatch.setenv("METASTREAM_STREAM", hostile_stream)
    monkeypatch.setenv("METASTREAM_DEAD_LETTER_STREAM", s.dead_letter_stream)
    try:
        # an entry not written by metastream, whose field name is a terminal escape
        redis_client.xadd(hostile_stream, {"field" + ESCAPES: b"x"})
        async with running_consumer(s):
            await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 1)
        capsys.readouterr()  # FastStream's own log lines

        assert main(["dead-letters", "list"]) == 0
        out = capsys.readouterr().out
        assert not has_control_characters(out.replace("\n", ""))
        assert r"\x1b[2J\x1b]0;pwned\x07" in out  # the stream's name and the field's
        assert len(out.splitlines()) == 2
    finally:
        redis_client.delete(hostile_stream, s.dead_letter_stream)
