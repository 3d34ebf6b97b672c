"""The ASGI app: the API under ``/api/v1``, the pages, static files, live updates.

app = create_app(Path("~/.metastream/metastream.db").expanduser())
uvicorn.run(app, host="127.0.0.1", port=8237)
"""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router

from metastream.api import asyncapi, errors, pages, routes
from metastream.api.live import Committed
from metastream.api.readers import Readers
from metastream.api.security import ASGIApp, with_headers, with_token
from metastream.query.reader import require_database

STATIC = Path(__file__).with_name("static")
OPENAPI_PATH = "/api/v1/schema"


def create_app(db: str | Path, *, token: str | None = None, poll_interval: float = 0.1) -> Litestar:
    """The app serving the database at ``db``; with ``token``, every request must carry it."""
    path = Path(db).expanduser()
    require_database(path)
    readers = Readers(path)
    committed = Committed(path, poll_interval)

    async def startup(app: Litestar) -> None:
        await committed.start()

    async def shutdown(app: Litestar) -> None:
        await committed.stop()
        readers.close()

    def guard(app: ASGIApp) -> ASGIApp:
        guarded = with_token(app, token) if token else app
        return with_headers(guarded)

    app = Litestar(
        route_handlers=[
            routes.router(),
            pages.router(),
            asyncapi.get_asyncapi,
            create_static_files_router(path="/static", directories=[STATIC], name="static"),
        ],
        state=State({"readers": readers, "committed": committed, "token": token}),
        on_startup=[startup],
        on_shutdown=[shutdown],
        exception_handlers={Exception: errors.handle},
        openapi_config=OpenAPIConfig(
            title="metastream",
            version="1",
            description="Read-only access to metastream's views: runs, steps, artifact and "
            "model versions with typed metadata, comparisons, the event log, live commits.",
            path=OPENAPI_PATH,
            render_plugins=[JsonRenderPlugin()],
        ),
        middleware=[guard],  # type: ignore[list-item]  # a plain ASGI middleware factory
        debug=False,
    )
    return app
