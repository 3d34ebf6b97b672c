"""Which pipeline an event belongs to: runs, steps and artifact versions learned from events.

Only a subscriber with a pipeline filter keeps this. It learns from every
event it reads (delivered or filtered out): ``RunStarted`` gives a run's id
and name -> pipeline; ``StepStarted`` a step's id -> run;
``ArtifactVersionRegistered`` an artifact version's id -> run. What it
learns goes to a Redis hash of its own (``<stream>:sub:<group>:runs``), so a
restarted subscriber (which does not replay history) still knows the runs
it saw. It grows by one field per run, step and artifact version.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aredis

from metastream.schemas.refs import ArtifactByName, ById, ModelByName, RunByName, StepByName
from metastream.subscriptions.filters import EventFilter, Peek


class RunKnowledge:
    """``run -> pipeline`` (and what leads to a run), in memory and in a Redis hash."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._known: dict[str, str] = {}
        self._new: dict[Any, Any] = {}

    async def load(self, client: aredis.Redis) -> None:
        stored: dict[Any, Any] = await client.hgetall(self.key)
        self._known.update({k.decode(): v.decode() for k, v in stored.items()})

    async def save(self, client: aredis.Redis) -> None:
        """Write what was learned since the last save (before acking what taught it)."""
        if self._new:
            new, self._new = self._new, {}
            await client.hset(self.key, mapping=new)

    def _learn(self, field: str, value: str) -> None:
        if self._known.get(field) != value:
            self._known[field] = value
            self._new[field] = value

    def learn(self, event: Peek) -> None:
        """Remember what ``event`` says about runs."""
        if event.type == "RunStarted" and event.run_id and event.pipeline_name is not None:
            self._learn(f"r:{event.run_id}", event.pipeline_name)
            if event.name is not None:
                self._learn(f"n:{event.name}", event.pipeline_name)
        elif event.type == "StepStarted" and event.step_id and event.run_id:
            self._learn(f"s:{event.step_id}", str(event.run_id))
        elif (
            event.type == "ArtifactVersionRegistered" and event.artifact_version_id and event.run_id
        ):
            self._learn(f"a:{event.artifact_version_id}", str(event.run_id))

    def _run(self, ref: str) -> str | None:
        """The pipeline of a run given by id or exact name."""
        try:
            return self._known.get(f"r:{uuid.UUID(ref)}")
        except ValueError:
            return self._known.get(f"n:{ref}")

    def _via(self, prefix: str, entity_id: uuid.UUID | None) -> str | None:
        run = self._known.get(f"{prefix}:{entity_id}") if entity_id else None
        return self._known.get(f"r:{run}") if run else None

    def pipeline_of(self, event: Peek) -> str | None:
        """The pipeline ``event`` belongs to, if it can be known."""
        target = event.target
        if target is None:
            if event.pipeline_name is not None:
                return event.pipeline_name
            if event.run_id is not None:
                return self._known.get(f"r:{event.run_id}")
            if event.step_id is not None:
                return self._via("s", event.step_id)
            return None
        if isinstance(target, ById):
            if target.kind == "pipeline_run":
                return self._known.get(f"r:{target.id}")
            if target.kind == "step_run":
                return self._via("s", target.id)
            if target.kind == "artifact_version":
                return self._via("a", target.id)
            return None
        if isinstance(target, RunByName):
            return self._run(target.name_id_or_prefix)
        if isinstance(target, StepByName):
            return self._run(target.run)
        assert isinstance(target, ArtifactByName | ModelByName)
        return None


def wanted(event_filter: EventFilter, knowledge: RunKnowledge | None, event: Peek) -> bool:
    """Whether ``event`` passes ``event_filter``; ``knowledge``, if kept, learns from it first
    (from every event read, delivered or not) and tells the filter its pipeline."""
    if knowledge is None:
        return event_filter.matches(event, None)
    knowledge.learn(event)
    return event_filter.matches(event, knowledge.pipeline_of(event))
