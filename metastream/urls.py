"""Redis URLs in messages: the password masked, and a failed connection explained.

A URL may carry a password (the local stack's always does, ``redis://:<password>@...``),
so every message, log line and status line shows URLs through
:func:`mask_url`, and text that may quote a URL (a driver's error message)
through :func:`scrub`. :func:`connection_problem` turns a driver error into
one sentence that says what went wrong, an authentication failure included,
instead of a bare "does not answer".
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

MASK: Final = "***"


def _query_password(query: str) -> str | None:
    values = parse_qs(query).get("password")
    return values[0] if values else None


def url_password(url: str) -> str | None:
    """The password in ``url`` (decoded; also ``?password=``), ``None`` if it has none."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return unquote(password)
    return _query_password(parts.query)


def mask_url(url: str) -> str:
    """``url`` with its password (``:password@`` or ``?password=``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<invalid URL>"
    if password:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:{MASK}@{host}")
    if _query_password(parts.query) is not None:
        pairs = [
            (name, MASK if name == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(pairs, safe="*"))
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}{fragment}"


def scrub(text: str, url: str | None) -> str:
    """``text`` with ``url``'s password masked wherever it appears (as is or URL-encoded)."""
    secret = url_password(url) if url else None
    if not secret:
        return text
    for form in sorted({secret, quote(secret, safe="")}, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def _has_credentials(url: str) -> bool:
    try:
        return bool(url_password(url) or urlsplit(url).username)
    except ValueError:
        return False


AUTH_FAILURES: Final = (
    "NOAUTH",
    "WRONGPASS",
    "invalid username-password pair",
    "Invalid Username or Password",
    "Authentication required",
    "HELLO must be called with the client already authenticated",
    "called without any password configured",
    "no password is set",
)
"""How Redis and redis-py word an authentication failure; matched in messages whose
exception lost its cause on the way (FastStream re-raises startup errors without it)."""


def is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is Redis refusing to authenticate the client."""
    import redis

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis.AuthenticationError):
            return True
        if any(marker in str(current) for marker in AUTH_FAILURES):
            return True
        current = current.__cause__ or current.__context__
    return False


def connection_problem(exc: BaseException, url: str) -> str:
    """One sentence for a failed connection to ``url``, the password masked.

    ``Redis at URL refused the password`` (a wrong one), ``Redis at URL
    needs a password`` (none was given), else ``Redis at URL does not
    answer (reason)``.
    """
    shown = mask_url(url)
    if is_auth_failure(exc):
        if not _has_credentials(url):
            return (
                f"Redis at {shown} needs a password: put it in the URL "
                "(redis://:PASSWORD@host:port/0)"
            )
        return f"Redis at {shown} refused the password (or user) in its URL"
    reason = scrub(str(exc), url) or type(exc).__name__
    return f"Redis at {shown} does not answer ({reason})"


__all__ = ["MASK", "connection_problem", "is_auth_failure", "mask_url", "scrub", "url_password"]
