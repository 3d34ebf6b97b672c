"""Errors as responses: JSON ``{"status", "message"}`` for the API, a page for the dashboard.

An unknown reference is a 404, a malformed one (or a bad parameter) a 400;
a server error is logged with its traceback and answered with a 500 that
says no more than that.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException

from metastream.api.models import Problem
from metastream.errors import AmbiguousReference, LogElsewhere, ReferenceNotFound

log = logging.getLogger("metastream.api")


def status_and_message(exc: Exception) -> tuple[int, str, list[str] | None]:
    if isinstance(exc, ReferenceNotFound):
        return 404, str(exc), None
    if isinstance(exc, AmbiguousReference):
        return 400, str(exc), list(exc.candidates)
    if isinstance(exc, HTTPException):
        message = str(exc.detail)
        extra = getattr(exc, "extra", None)
        if isinstance(extra, list) and extra:
            details = "; ".join(
                f"{e.get('key', '?')}: {e.get('message', '')}" for e in extra if isinstance(e, dict)
            )
            message = f"{message} ({details})" if details else message
        return exc.status_code, message, None
    if isinstance(exc, ValueError):
        return 400, str(exc), None
    if isinstance(exc, LogElsewhere):  # a configuration this server cannot serve yet
        return 501, str(exc), None
    return 500, "internal server error (see the server's log)", None


def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, message, candidates = status_and_message(exc)
    if status >= 500:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith("/api/"):
        return Response(
            Problem(status=status, message=message, candidates=candidates),
            status_code=status,
            media_type=MediaType.JSON,
        )
    from metastream.api.pages import error_page

    return error_page(request, status, message)
