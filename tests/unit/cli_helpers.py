"""Running ``metastream`` in-process over a database the projections built."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

from metastream.cli import main
from metastream.projections import Store
from tests.events import incoming


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``metastream argv...``: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def projected_db(path: Path, events: Iterable[msgspec.Struct]) -> Path:
    """``path``: a database holding ``events`` in one batch, applied to the views (sync: the CLI
    runs its own event loop)."""

    async def fill() -> None:
        async with await Store.open(path) as store:
            await store.ingest(incoming(*events))  # type: ignore[arg-type]

    asyncio.run(fill())
    return path
