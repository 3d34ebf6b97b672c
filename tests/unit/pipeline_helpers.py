"""A stand-in for the producer that keeps what would be sent: for tests of logic only."""

from __future__ import annotations

from typing import Any

from metastream.schemas import AnyEvent, MetadataLogged, decode_event


class Published:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def publish(self, body: bytes) -> None:
        self.bodies.append(body)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    @property
    def events(self) -> list[AnyEvent]:
        return [decode_event(b) for b in self.bodies]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if type(e) is kind]

    @property
    def metadata(self) -> list[MetadataLogged]:
        return self.of(MetadataLogged)
