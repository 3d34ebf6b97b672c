"""``GET /docs/asyncapi``: the event stream's contract (AsyncAPI 3.0), for subscribing services.

The same document ``metastream schema asyncapi`` writes
(``metastream.schemas.asyncapi``), for the stream ``$METASTREAM_STREAM``
names; served as JSON (the AsyncAPI web renderer loads from a CDN, which the
dashboard's content security policy does not allow).
"""

from __future__ import annotations

from functools import cache

from litestar import Response, get

from metastream.config import Settings
from metastream.schemas.asyncapi import asyncapi_json

PATH = "/docs/asyncapi"


@cache
def _document(stream: str) -> bytes:
    return asyncapi_json(stream).encode()


@get(PATH, summary="The event stream's AsyncAPI 3.0 document", include_in_schema=False)
async def get_asyncapi() -> Response[bytes]:
    return Response(_document(Settings.from_env().stream), media_type="application/json")
