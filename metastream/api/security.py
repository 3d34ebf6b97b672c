"""Security headers on every response, and the token check (plain ASGI middleware).

The Content-Security-Policy allows scripts and styles only from the server
itself: no inline script, no inline style attribute, no other origin, so
text that slipped into a page unescaped still could not run. With a token
set, every request but the login form and static files needs it, as
``Authorization: Bearer <token>`` or the HttpOnly cookie the login form sets;
pages without it redirect to the form, the API answers 401.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
COOKIE: Final = "metastream_token"
OPEN_PATHS: Final = ("/login", "/static/")


def with_headers(app: ASGIApp) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((n, v) for n, v in HEADERS if n not in names),
                ]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def _presented(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, raw in headers:
        if name == b"authorization":
            scheme, _, credentials = raw.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    for name, raw in headers:
        if name == b"cookie":
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(raw.decode("latin-1"))
            except CookieError:  # a malformed cookie is no token
                return None
            if COOKIE in cookie:
                token: str = cookie[COOKIE].value
                return token
    return None


def token_matches(presented: str | None, token: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def with_token(app: ASGIApp, token: str) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or path.startswith(OPEN_PATHS):
            await app(scope, receive, send)
            return
        if token_matches(_presented(scope), token):
            await app(scope, receive, send)
            return
        if path.startswith("/api/"):
            body = json.dumps({"status": 401, "message": "a token is required"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="metastream"'),
            ]
            status = 401
        else:
            body = b""
            headers = [(b"location", b"/login")]
            status = 303
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return guarded
