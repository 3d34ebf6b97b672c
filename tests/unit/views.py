"""Reading the views' tables directly, to compare them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from metastream.schemas import decode_value

VIEW_TABLES = ("entities", "latest", "latest_maps", "history", "pending", "rejections")


def dump(path: Path, tables: tuple[str, ...] = VIEW_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the view tables, sorted: equal dumps mean byte-identical views."""
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        db.close()


def latest(path: Path, entity: bytes) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        return {
            k: decode_value(v)
            for k, v in db.execute("SELECT key, value FROM latest WHERE entity=?", (entity,))
        }
    finally:
        db.close()
