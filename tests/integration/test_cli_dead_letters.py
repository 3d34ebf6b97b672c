"""``metastream dead-letters retry`` with ids that name no dead letter: one line, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from metastream.cli import main

pytestmark = pytest.mark.redis


@pytest.fixture
def stack_env(home: Path, redis_url: str, stream: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's Redis (never the machine's), a dead-letter stream of this test's own."""
    monkeypatch.setenv("METASTREAM_REDIS_URL", redis_url)
    monkeypatch.setenv("METASTREAM_DEAD_LETTER_STREAM", f"{stream}:dead")
    return f"{stream}:dead"


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["BADID"], "not a dead-letter id: 'BADID' (an id looks like 1764590000000-0"),
        (["1-0", "x-y"], "not a dead-letter id: 'x-y'"),
        (["1764590000000-0"], "no dead letter with id 1764590000000-0"),
    ],
)
def test_retry_of_an_unknown_or_malformed_id_is_one_line(
    stack_env: str, capsys: pytest.CaptureFixture[str], ids: list[str], message: str
) -> None:
    code = main(["dead-letters", "retry", *ids])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("metastream: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert out == ""
