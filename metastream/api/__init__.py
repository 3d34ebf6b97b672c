"""The HTTP API and the web dashboard (``metastream ui``): read-only, over the views."""

from metastream.api.app import create_app
from metastream.api.settings import UiSettings, check_exposure

__all__ = ["UiSettings", "check_exposure", "create_app"]
