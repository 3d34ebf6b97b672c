"""The switch-over's state, kept in Redis so that a crash anywhere resumes exactly.

One hash per subscription (``keys.SubscriptionKeys.state``):

=========  ===================================================================
``stage``  ``starting``: the group may not exist yet; ``catchup``: the group
           exists, history is being delivered; ``live``: following the group
``from``   the log position the subscriber asked to start after
``h1``     the log head read before ``d``
``d``      the log group's last-delivered id when the group was created (it
           was created there)
``head``   the log head read after the group was created: the catch-up ends there
``d2``     the log group's last-delivered id read after ``head``
``after``  the position the catch-up has delivered through
=========  ===================================================================

And a set (``keys.seen``) of the ids of events the catch-up delivered from
positions after ``h1``: the only ones the group can hold again (see
``switchover.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import redis.asyncio as aredis

Stage = Literal["starting", "catchup", "live"]


@dataclass
class SwitchState:
    stage: Stage
    start: int = 0
    h1: int = 0
    d: str = "0-0"
    head: int = 0
    d2: str = "0-0"
    after: int = 0

    _NAMES: ClassVar[dict[str, str]] = {"start": "from"}

    @classmethod
    async def load(cls, client: aredis.Redis, key: str) -> SwitchState | None:
        raw: dict[Any, Any] = await client.hgetall(key)
        if not raw:
            return None
        got = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            stage=got["stage"],
            start=int(got.get("from", 0)),
            h1=int(got.get("h1", 0)),
            d=got.get("d", "0-0"),
            head=int(got.get("head", 0)),
            d2=got.get("d2", "0-0"),
            after=int(got.get("after", 0)),
        )

    async def save(self, client: aredis.Redis, key: str) -> None:
        mapping: dict[Any, Any] = {
            self._NAMES.get(f.name, f.name): str(getattr(self, f.name)) for f in fields(self)
        }
        await client.hset(key, mapping=mapping)
