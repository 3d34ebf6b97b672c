"""The HTTP API and the web dashboard (``metastream ui``): read-only, over the views.

Names load on first use, so that ``metastream.api.settings`` (where the
dashboard listens; the local stack reads it) costs no web framework import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["UiSettings", "check_exposure", "create_app"]

_WHERE = {
    "UiSettings": "metastream.api.settings",
    "check_exposure": "metastream.api.settings",
    "create_app": "metastream.api.app",
}

if TYPE_CHECKING:
    from metastream.api.app import create_app
    from metastream.api.settings import UiSettings, check_exposure


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'metastream.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
