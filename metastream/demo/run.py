"""``metastream demo``: the example pipeline, run twice against the local stack, then shown.

1. The stack: ``METASTREAM_REDIS_URL`` if it is set (nothing is started; a
   consumer must be running elsewhere); else the local stack if it is up
   (used, and left running); else a local stack started for the demo and
   stopped when it ends, also on an error or Ctrl-C (``keep_running`` leaves
   it up).
2. The pipeline (``metastream.demo.pipeline``) runs twice, with two learning
   rates, under run names unique to this invocation.
3. Once the consumer has written everything to the views, each run is
   printed as ``metastream show run`` prints it, with its model version,
   then the dataset artifact, then the two runs' numeric metadata side by
   side, then commands to explore further.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Final

from metastream.cli.render import entity_lines, run_header, show_value, table
from metastream.config import Settings
from metastream.errors import EventRejected, MetastreamError, ReferenceNotFound, StoreError
from metastream.pipelines import LogHandle, Model, log_metadata
from metastream.producer import flush
from metastream.query import Client
from metastream.query.views import ArtifactVersionView, ModelVersionView, RunView
from metastream.urls import mask_url

Say = Callable[[str], None]

LEARNING_RATES: Final = (0.05, 0.3)
EPOCHS: Final = 30
SEED: Final = 42
WAIT_TIMEOUT: Final = 30.0
"""Seconds the consumer gets to write both runs to the views."""
STEPS: Final = ("load_data", "train_model", "evaluate_model")


class DemoError(MetastreamError, RuntimeError):
    """The demo could not run to the end (printed as one line by the CLI)."""


@dataclass(frozen=True)
class DemoRun:
    """One run of the example pipeline: its name, parameters and model version."""

    index: int
    name: str
    model_version: str
    learning_rate: float
    epochs: int = EPOCHS
    seed: int = SEED

    @property
    def parameters(self) -> str:
        return f"learning_rate={self.learning_rate:g} epochs={self.epochs} seed={self.seed}"


class Progress:
    """Progress lines on stdout, none when ``quiet``; ``begin`` starts a line ``end`` ends."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.open = False

    def __call__(self, line: str) -> None:
        if self.quiet:
            return
        self.close()
        print(line, flush=True)

    def begin(self, text: str) -> None:
        if self.quiet:
            return
        self.close()
        print(f"{text} ...", end="", flush=True)
        self.open = True

    def end(self, text: str) -> None:
        if self.quiet:
            return
        print(f" {text}" if self.open else f"  {text}", flush=True)
        self.open = False

    def close(self) -> None:
        if self.open:
            print(flush=True)
            self.open = False


def _indented(say: Say) -> Say:
    return lambda line: say(f"  {line}")


# -- the stack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """Where the demo's events end up: the database a consumer writes, and its log if known."""

    db: FsPath
    log: FsPath | None = None

    def hint(self) -> str:
        if self.log is None:
            return "is a consumer reading METASTREAM_REDIS_URL and writing this database?"
        return f"see the consumer's log, {self.log}"


@contextmanager
def stack_for_demo(settings: Settings, *, keep_running: bool, say: Say) -> Iterator[Consumer]:
    """Make sure a consumer writes the events somewhere; yields where.

    A stack started here is stopped when the block ends, however it ends,
    unless ``keep_running``.
    """
    from metastream.stack.local import consumer_log, dead_consumer, down, running, up

    if settings.redis_url:
        say(
            f"using the Redis at METASTREAM_REDIS_URL={mask_url(settings.redis_url)}; nothing is "
            f"started, so a consumer writing {settings.db} must be running there"
        )
        yield Consumer(settings.db)
        return
    current = running(settings)
    if current is not None:
        consumer = dead_consumer(current)
        if consumer is not None:
            raise DemoError(
                f"the local stack at {mask_url(current['redis_url'])} is up but its consumer (pid "
                f"{consumer}) is not running: restart it with `metastream down && metastream up`"
            )
        shown = mask_url(current["redis_url"])
        say(f"using the local stack already running at {shown} (it stays up)")
        log = current.get("consumer_log")
        yield Consumer(
            FsPath(str(current.get("db") or settings.db)),
            FsPath(str(log)) if log else consumer_log(settings),
        )
        return
    say(f"starting the local stack (redis and a consumer) in {settings.home} ...")
    started = up(settings, detach=True, say=_indented(say), dashboard=False)  # it stops at the end
    try:
        yield Consumer(settings.db, consumer_log(settings))
    finally:
        if started and not keep_running:
            flush(5.0)  # after an error: what is still queued reaches the stream first
            say("stopping the local stack ...")
            down(settings, say=_indented(say))
        elif started:
            say("the local stack keeps running (--keep-running); `metastream down` stops it")


# -- running the pipeline ------------------------------------------------------------------


def plan_runs(db: FsPath, now: datetime.datetime | None = None) -> list[DemoRun]:
    """Run names for this invocation: ``demo-<date>-<time>-lr<rate>``, unused in ``db``."""
    stamp = f"{now or datetime.datetime.now():%Y%m%d-%H%M%S}"
    with _Names(db) as names:
        suffix = ""
        for attempt in range(2, 1000):
            wanted = [f"demo-{stamp}{suffix}-lr{rate:g}" for rate in LEARNING_RATES]
            if not any(names.taken(n) for n in wanted):
                break
            suffix = f"-{attempt}"
    return [
        DemoRun(index=i, name=name, model_version=name.removeprefix("demo-"), learning_rate=rate)
        for i, (name, rate) in enumerate(zip(wanted, LEARNING_RATES, strict=True), 1)
    ]


class _Names:
    """Which run names the database already knows (none, when there is no database yet)."""

    def __init__(self, db: FsPath) -> None:
        self.client: Client | None = None
        if db.exists():
            try:
                self.client = Client(db)
                self.client.reader  # noqa: B018 - opens the database, or raises StoreError
            except StoreError:
                self.client = None

    def __enter__(self) -> _Names:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()

    def taken(self, name: str) -> bool:
        if self.client is None:
            return False
        try:
            self.client.get_pipeline_run(name, rollups=False)
        except ReferenceNotFound:
            return False
        except (MetastreamError, ValueError):  # ambiguous: runs with this prefix exist
            return True
        return True


def run_pipeline(demo: DemoRun, progress: Progress) -> LogHandle:
    """Run the example pipeline once; returns the handle of the last metadata it logged."""
    from metastream.demo.pipeline import MODEL_NAME, training_pipeline

    progress.begin(f"run {demo.index}/{len(LEARNING_RATES)} {demo.name}: {demo.parameters}")
    started = time.perf_counter()
    configured = training_pipeline.with_options(
        run_name=demo.name,
        model=Model(MODEL_NAME, demo.model_version, description="churn classifier"),
    )
    try:
        run = configured(learning_rate=demo.learning_rate, epochs=demo.epochs, seed=demo.seed)
    except Exception as exc:
        raise DemoError(f"run {demo.name} failed: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - started
    # Outside the pipeline, by the run's name: metadata can be added to a run at any time.
    handle = log_metadata({"duration_seconds": round(seconds, 4)}, run_id_name_or_prefix=run.name)
    progress.end(f"{run.status} in {seconds:.2f} s")
    return handle


# -- waiting for the views -----------------------------------------------------------------


def wait_for_views(
    consumer: Consumer, runs: Sequence[DemoRun], handles: Sequence[LogHandle], timeout: float
) -> Client:
    """Return a client once both runs, their steps and model versions are in the views."""
    from metastream.demo.pipeline import MODEL_NAME

    db = consumer.db
    deadline = time.monotonic() + timeout
    flush(timeout)
    while not db.exists():
        if time.monotonic() >= deadline:
            raise DemoError(
                f"no database at {db} after {timeout:g} s: no consumer wrote the events; "
                + consumer.hint()
            )
        time.sleep(0.05)
    client = Client(db)
    try:
        for handle in handles:
            client.wait_for(handle, timeout=max(0.0, deadline - time.monotonic()))
        while True:
            missing = _not_visible_yet(client, runs, MODEL_NAME)
            if missing is None:
                return client
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{missing} is not in the views after {timeout:g} s")
            time.sleep(0.05)
    except (TimeoutError, EventRejected) as exc:
        client.close()
        raise DemoError(f"{exc}; {consumer.hint()}") from exc
    except BaseException:
        client.close()
        raise


def _not_visible_yet(client: Client, runs: Sequence[DemoRun], model: str) -> str | None:
    """What is still missing from the views, or ``None`` when everything is there."""
    for demo in runs:
        try:
            view = client.get_pipeline_run(demo.name, rollups=False)
        except ReferenceNotFound:
            return f"run {demo.name}"
        if view.status not in ("completed", "failed"):
            return f"the end of run {demo.name}"
        for name in STEPS:
            step = view.steps.get(name)
            if step is None or step.status not in ("completed", "failed"):
                return f"step {name} of run {demo.name}"
        try:
            version = client.get_model_version(model, demo.model_version)
        except ReferenceNotFound:
            return f"model version {model} {demo.model_version}"
        if "metrics" not in version.run_metadata:
            return f"the metrics of model version {model} {demo.model_version}"
    return None


# -- printing ------------------------------------------------------------------------------


def run_lines(run: RunView) -> list[str]:
    """A run as ``metastream show run`` prints it."""
    return entity_lines(run_header(run), run.run_metadata, run.steps.values())


def model_lines(model: ModelVersionView) -> list[str]:
    header = {"model": f"{model.name}, version {model.version} ({model.id})"}
    return entity_lines(header, model.run_metadata)


def artifact_lines(artifact: ArtifactVersionView) -> list[str]:
    header = {"artifact": f"{artifact.name}, version {artifact.version} ({artifact.id})"}
    if artifact.uri:
        header["uri"] = artifact.uri
    return entity_lines(header, artifact.run_metadata)


def _delta(values: list[int | float | None]) -> str:
    first, second = values
    if first is None or second is None:
        return "-"
    difference = second - first
    if difference == 0:
        return "="
    if isinstance(difference, int):
        return f"{difference:+,}"
    return f"{difference:+.4g}"


def comparison_lines(client: Client, runs: Sequence[RunView]) -> list[str]:
    """The runs' numeric metadata side by side, with the second minus the first."""
    compared = client.compare_runs(list(runs))
    rows = [
        [key, *("-" if v is None else show_value(v) for v in values), _delta(values)]
        for key, values in compared.items()
    ]
    return table(["key", *(r.name for r in runs), "delta"], rows)


def _artifact_of(client: Client, name: str, run: RunView) -> ArtifactVersionView | None:
    """The version of artifact ``name`` that ``run`` produced."""
    return next((a for a in client.get_run_artifacts(run) if a.name == name), None)


def _rule(title: str) -> str:
    return f"== {title} " + "=" * max(3, 76 - len(title))


def report_lines(client: Client, runs: Sequence[DemoRun], db: FsPath, cli_db: str) -> list[str]:
    """Everything the demo prints once the runs are in the views."""
    from metastream.demo.pipeline import DATASET_ARTIFACT, MODEL_NAME

    views = [client.get_pipeline_run(demo.name) for demo in runs]
    lines: list[str] = []
    for demo, view in zip(runs, views, strict=True):
        lines.extend(["", _rule(f"run {demo.index}/{len(runs)}: {demo.name} ({demo.parameters})")])
        lines.extend(run_lines(view))
        lines.extend(model_lines(client.get_model_version(MODEL_NAME, demo.model_version)))
    artifact = _artifact_of(client, DATASET_ARTIFACT, views[-1])
    if artifact is not None:
        lines.extend(["", _rule(f"the dataset of run {views[-1].name}")])
        lines.extend(artifact_lines(artifact))
    lines.extend(["", _rule("numeric metadata side by side (delta: run 2 - run 1)")])
    lines.extend(comparison_lines(client, views))
    first, last = runs[0].name, runs[-1].name
    prefix = f"metastream{cli_db}"
    lines.extend(
        [
            "",
            "explore further:",
            f"  {prefix} show run {last}",
            f"  {prefix} history step train_model loss --run {first}",
            f"  {prefix} show model {MODEL_NAME} --version {runs[0].model_version}",
            f"  {prefix} show artifact {DATASET_ARTIFACT}",
            f"the database: {db}",
            "",
            "in the browser (cards, the comparison and its plot):",
            f"  {prefix} ui --open",
            f"  then http://127.0.0.1:8237/compare?runs={first}&runs={last}",
        ]
    )
    return lines


# -- the whole demo ------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    *,
    keep_running: bool = False,
    quiet: bool = False,
    timeout: float = WAIT_TIMEOUT,
) -> list[DemoRun]:
    """Run the demo: progress lines (unless ``quiet``), then the report, on stdout."""
    progress = Progress(quiet)
    try:
        with stack_for_demo(settings, keep_running=keep_running, say=progress) as consumer:
            db = consumer.db
            runs = plan_runs(db)
            handles = [run_pipeline(demo, progress) for demo in runs]
            progress.begin("waiting for the consumer to write both runs to the views")
            started = time.perf_counter()
            with wait_for_views(consumer, runs, handles, timeout) as client:
                progress.end(f"done in {time.perf_counter() - started:.2f} s")
                default_db = Settings.from_env().db
                cli_db = "" if db == default_db else f" --db {db}"
                lines = report_lines(client, runs, db, cli_db)
    finally:
        progress.close()
    print("\n".join(lines[1:] if quiet else lines), flush=True)  # quiet: no blank first line
    return runs
