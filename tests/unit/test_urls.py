"""Passwords never shown: ``metastream.urls``."""

from __future__ import annotations

import pytest
import redis

from metastream.errors import NotRunning
from metastream.urls import connection_problem, is_auth_failure, mask_url, scrub, url_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6380/0", "redis://:***@127.0.0.1:6380/0"),
        ("rediss://alice:s3cret@host:6380/2?ssl_cert_reqs=none", "rediss://alice:***@host:6380/2?ssl_cert_reqs=none"),
        ("redis://u:p%40ss@h:1/0", "redis://u:***@h:1/0"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
        ("redis://127.0.0.1:6380/0", "redis://127.0.0.1:6380/0"),
        ("redis://alice@host/0", "redis://alice@host/0"),
    ],
)  # fmt: skip
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_an_invalid_url_is_not_echoed() -> None:
    assert mask_url("redis://:s3cret@[::1/0") == "<invalid URL>"


def test_scrub_masks_the_password_in_any_text() -> None:
    url = "redis://u:p%40ss@h:1/0"
    assert url_password(url) == "p@ss"
    assert scrub("AUTH p@ss failed; p%40ss too", url) == "AUTH *** failed; *** too"
    assert scrub("nothing to hide", "redis://h:1/0") == "nothing to hide"
    assert scrub("text", None) == "text"


def test_an_authentication_failure_is_named_as_such() -> None:
    url = "redis://:s3cret@127.0.0.1:1/0"
    refused = connection_problem(redis.AuthenticationError("invalid password"), url)
    assert (
        refused == "Redis at redis://:***@127.0.0.1:1/0 refused the password (or user) in its URL"
    )
    needs = connection_problem(redis.AuthenticationError("NOAUTH"), "redis://127.0.0.1:1/0")
    assert needs.startswith("Redis at redis://127.0.0.1:1/0 needs a password")
    down = connection_problem(redis.ConnectionError("Error 111 connecting"), url)
    assert down == "Redis at redis://:***@127.0.0.1:1/0 does not answer (Error 111 connecting)"


def test_an_auth_failure_is_recognised_through_causes_and_in_messages() -> None:
    def fail() -> None:
        try:
            raise redis.AuthenticationError("WRONGPASS invalid username-password pair")
        except redis.RedisError as exc:
            raise NotRunning("cannot reach Redis") from exc

    with pytest.raises(NotRunning) as wrapped:
        fail()
    assert is_auth_failure(wrapped.value)
    # FastStream re-raises startup errors without their cause: the words remain
    assert is_auth_failure(NotRunning("cannot reach Redis at x: invalid username-password pair"))
    assert not is_auth_failure(NotRunning("cannot reach Redis at x: Connection refused"))
