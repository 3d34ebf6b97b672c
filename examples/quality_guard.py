"""A model-quality guard: a service that subscribes to metastream's events.

It keeps a rolling baseline of one metric per pipeline (the mean over the
last ``QUALITY_GUARD_WINDOW`` runs) and, when a run's metric falls more than
``QUALITY_GUARD_TOLERANCE`` below its pipeline's baseline, it raises an
alert: a line on stdout, and a ``quality_guard`` card logged on the run with
metastream's own ``log_metadata`` (so the alert shows in the dashboard, in
``metastream show`` and to every other subscriber).

Run it beside a metastream stack::

    METASTREAM_REDIS_URL=redis://127.0.0.1:6380/0 \\
    METASTREAM_UI_URL=http://127.0.0.1:8237 METASTREAM_UI_TOKEN=... \\
    python examples/quality_guard.py

Settings (environment):

* ``QUALITY_GUARD_METRIC``: the metadata key to watch; ``card.field`` for a
  field of a dict-valued key (default ``metrics.accuracy``, what ``metastream
  demo`` logs on its ``evaluate_model`` step). Higher is better.
* ``QUALITY_GUARD_WINDOW`` (5): runs in the baseline; ``QUALITY_GUARD_MIN_RUNS``
  (3): runs needed before anything is judged; ``QUALITY_GUARD_TOLERANCE``
  (0.05): the drop below the baseline that is a regression.
* ``QUALITY_GUARD_GROUP`` (``quality-guard``): its consumer group. A new group
  first replays the whole event log (``METASTREAM_UI_URL``'s events feed, or
  the database file ``METASTREAM_DB``), so the baseline starts from history.

Its state (the baselines, which runs it has judged) lives in Redis beside its
group, written before an event is acknowledged: a restarted guard continues
with the same baselines, and an event delivered twice (delivery is at least
once) changes nothing and raises no second alert, unless the guard died
between an alert and recording the run as judged: then it alerts again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis

import metastream
from metastream import config
from metastream.config import Settings
from metastream.schemas import AnyEvent, ById, MetadataLogged, RunByName, RunStarted, StepStarted
from metastream.subscriptions import SubscribeOptions, subscribe
from metastream.subscriptions.keys import SubscriptionKeys

log = logging.getLogger("quality_guard")


@dataclass(frozen=True)
class GuardSettings:
    metric: str = "metrics.accuracy"
    window: int = 5
    min_runs: int = 3
    tolerance: float = 0.05
    group: str = "quality-guard"

    @classmethod
    def from_env(cls) -> GuardSettings:
        env = os.environ
        return cls(
            metric=env.get("QUALITY_GUARD_METRIC", cls.metric),
            window=int(env.get("QUALITY_GUARD_WINDOW", cls.window)),
            min_runs=int(env.get("QUALITY_GUARD_MIN_RUNS", cls.min_runs)),
            tolerance=float(env.get("QUALITY_GUARD_TOLERANCE", cls.tolerance)),
            group=env.get("QUALITY_GUARD_GROUP", cls.group),
        )


class QualityGuard:
    """The handler: learns runs and steps, judges each run's metric against its pipeline."""

    def __init__(self, settings: GuardSettings, client: aredis.Redis, prefix: str) -> None:
        self.settings = settings
        self.client = client
        self.key, _, self.field = settings.metric.partition(".")
        self.prefix = (
            prefix  # the guard's Redis keys: <prefix>:runs, :steps, :baseline:<p>, :judged
        )

    # -- what the guard remembers (Redis) -------------------------------------

    async def _pipeline_of_run(self, run_id: str) -> str | None:
        found = await self.client.hget(f"{self.prefix}:runs", run_id)
        return found.decode() if isinstance(found, bytes) else None

    async def _run_of(self, event: MetadataLogged) -> str | None:
        target = event.target
        if isinstance(target, ById) and target.kind == "pipeline_run":
            return str(target.id)
        if isinstance(target, ById) and target.kind == "step_run":
            found = await self.client.hget(f"{self.prefix}:steps", str(target.id))
            return found.decode() if isinstance(found, bytes) else None
        if isinstance(target, RunByName):
            found = await self.client.hget(f"{self.prefix}:names", target.name_id_or_prefix)
            return found.decode() if isinstance(found, bytes) else target.name_id_or_prefix
        return None

    def _value(self, event: MetadataLogged) -> float | None:
        value: Any = event.metadata.get(self.key)
        if self.field:
            value = value.get(self.field) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    # -- the handler ----------------------------------------------------------

    async def __call__(self, event: AnyEvent) -> None:
        if isinstance(event, RunStarted):
            await self.client.hset(f"{self.prefix}:runs", str(event.run_id), event.pipeline_name)
            await self.client.hset(f"{self.prefix}:names", event.name, str(event.run_id))
        elif isinstance(event, StepStarted):
            await self.client.hset(f"{self.prefix}:steps", str(event.step_id), str(event.run_id))
        elif isinstance(event, MetadataLogged):
            value = self._value(event)
            run_id = await self._run_of(event) if value is not None else None
            if value is not None and run_id is not None:
                await self.judge(run_id, value)

    async def judge(self, run_id: str, value: float) -> None:
        """Compare a run's metric with its pipeline's baseline, then add it to the baseline."""
        pipeline = await self._pipeline_of_run(run_id)
        if pipeline is None:
            return
        judged = f"{self.prefix}:judged"
        if await self.client.sismember(judged, run_id):
            return  # judged already (a redelivery, or the metric logged twice)
        baseline_key = f"{self.prefix}:baseline:{pipeline}"
        history = [float(v) for v in await self.client.lrange(baseline_key, 0, -1)]
        if len(history) >= self.settings.min_runs:
            baseline = sum(history) / len(history)
            if value < baseline - self.settings.tolerance:
                self.alert(pipeline, run_id, value, baseline, len(history))
        # One MULTI: the run counts in the baseline exactly when it is marked judged. A
        # crash between the alert and here alerts again on the redelivery (at least once).
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(judged, run_id)
            pipe.rpush(baseline_key, value)
            pipe.ltrim(baseline_key, -self.settings.window, -1)
            await pipe.execute()

    def alert(self, pipeline: str, run_id: str, value: float, baseline: float, runs: int) -> None:
        card = {
            "regressed": True,
            "metric": self.settings.metric,
            "value": value,
            "baseline": round(baseline, 6),
            "baseline_runs": runs,
            "drop": round(baseline - value, 6),
        }
        metastream.log_metadata(
            metadata={"quality_guard": card}, run_id_name_or_prefix=uuid.UUID(run_id)
        )
        print(
            f"ALERT quality regression: pipeline {pipeline} run {run_id} "
            f"{self.settings.metric}={value:.4f} baseline={baseline:.4f} "
            f"(mean of {runs} runs, tolerance {self.settings.tolerance})",
            flush=True,
        )


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = GuardSettings.from_env()
    found = Settings.from_env()
    url = config.redis_url(found)
    if url is None:
        print("quality guard: set METASTREAM_REDIS_URL (or start `metastream up`)", file=sys.stderr)
        return 1
    keys = SubscriptionKeys(found.stream, settings.group)
    guard = QualityGuard(settings, aredis.Redis.from_url(url), prefix=f"{keys.state}:guard")
    subscription = subscribe(
        guard,
        group=settings.group,
        from_="start",
        types=("RunStarted", "StepStarted", "MetadataLogged"),
        options=SubscribeOptions(redis_url=url, settings=found),
    )
    print(
        "quality guard: watching "
        + json.dumps(
            {"metric": settings.metric, "group": settings.group, "window": settings.window}
        ),
        flush=True,
    )
    try:
        subscription.run()
    finally:
        metastream.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
