"""Where ``metastream ui`` listens, and the token that guards it off loopback.

- METASTREAM_UI_HOST: the address to bind (``127.0.0.1``)
- METASTREAM_UI_PORT: the port (``8237``)
- METASTREAM_UI_TOKEN: required on any address but loopback; requests then
  need it (``Authorization: Bearer <token>``, or the login form's cookie)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8237
MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True)
class UiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None

    @property
    def url(self) -> str:
        """Where a browser on this machine finds the dashboard (loopback for a wildcard bind)."""
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UiSettings:
        env = os.environ if env is None else env
        raw_port = env.get("METASTREAM_UI_PORT") or str(DEFAULT_PORT)
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"METASTREAM_UI_PORT={raw_port!r} is not a whole number") from None
        return cls(
            host=env.get("METASTREAM_UI_HOST") or DEFAULT_HOST,
            port=port,
            token=env.get("METASTREAM_UI_TOKEN") or None,
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def check_exposure(settings: UiSettings) -> None:
    """Refuse (``ValueError``) to serve on a non-loopback address without a real token."""
    if not 0 <= settings.port <= 65535:
        raise ValueError(f"port {settings.port} is not between 0 and 65535")
    if is_loopback(settings.host):
        return
    if settings.token is None:
        raise ValueError(
            f"refusing to serve on {settings.host}, which other machines can reach, without a "
            "token: set METASTREAM_UI_TOKEN to a secret of at least "
            f"{MIN_TOKEN_LENGTH} characters (for example `export METASTREAM_UI_TOKEN=$(python -c "
            "'import secrets; print(secrets.token_urlsafe())')`), or serve on 127.0.0.1"
        )
    if len(settings.token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"METASTREAM_UI_TOKEN is {len(settings.token)} characters long; use at least "
            f"{MIN_TOKEN_LENGTH} on an address other machines can reach"
        )
