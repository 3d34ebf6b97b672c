"""``@step`` and ``@pipeline``: plain Python functions that record what they do.

Calling a pipeline creates a run and executes the steps it calls, in order,
in this process. A step called outside a pipeline runs as a one-step
pipeline of its own, so ``log_metadata`` inside it always has a home.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from metastream.pipelines.components import StackComponent
from metastream.pipelines.context import current_run
from metastream.pipelines.model import Model
from metastream.pipelines.outputs import declared_outputs, produced_outputs
from metastream.pipelines.runs import PipelineRun, pipeline_run, step_run

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[R]):
    """A function decorated with ``@step``.

    Call it with an extra ``id="..."`` to name this invocation (the default
    is the function's name, then ``name_2``, ``name_3``... within a run).
    Its arguments are typed loosely so that ``id=`` type-checks, as the
    reference's examples use it.
    """

    def __init__(
        self, func: Callable[..., R], *, name: str | None = None, model: Model | None = None
    ) -> None:
        functools.update_wrapper(self, func)
        self.entrypoint = func
        self.name = name or func.__name__
        self.model = model
        self._declared = declared_outputs(func)

    def __call__(self, *args: Any, id: str | None = None, **kwargs: Any) -> R:
        if id is not None and not isinstance(id, str):
            raise TypeError(f"step {self.name!r}: id= must be a str, got {id!r}")
        run = current_run.get()
        if run is None:  # a step on its own: record it as a one-step pipeline
            with pipeline_run(self.name, model=self.model):
                return self(*args, id=id, **kwargs)
        with step_run(
            run,
            id or self.name,
            model=self.model,
            declared=self._declared,
            explicit_name=id is not None,
        ) as state:
            result = self.entrypoint(*args, **kwargs)
            state.produced = produced_outputs(result, self._declared)
        return result

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@overload
def step(func: Callable[..., R]) -> Step[R]: ...
@overload
def step(
    func: None = None, *, name: str | None = None, model: Model | None = None, **ignored: Any
) -> Callable[[Callable[..., R]], Step[R]]: ...


def step(
    func: Callable[..., R] | None = None,
    *,
    name: str | None = None,
    model: Model | None = None,
    **ignored: Any,
) -> Step[R] | Callable[[Callable[..., R]], Step[R]]:
    """Make ``func`` a step: ``@step`` or ``@step(name=..., model=Model(...))``.

    Options of the reference that concern execution elsewhere (caching,
    settings, step operators) are accepted and have no effect here.
    """

    def wrap(f: Callable[..., R]) -> Step[R]:
        return Step(f, name=name, model=model)

    return wrap(func) if func is not None else wrap


class Pipeline(Generic[P]):
    """A function decorated with ``@pipeline``: calling it runs it and returns the run."""

    def __init__(
        self,
        func: Callable[P, Any],
        *,
        name: str | None = None,
        run_name: str | None = None,
        model: Model | None = None,
        extra: dict[str, Any] | None = None,
        components: Sequence[StackComponent] = (),
    ) -> None:
        functools.update_wrapper(self, func)
        self.entrypoint = func
        self.name = name or func.__name__
        self.run_name = run_name
        self.model = model
        self.extra = dict(extra or {})
        self.components = list(components)

    def with_options(
        self,
        *,
        run_name: str | None = None,
        model: Model | None = None,
        extra: dict[str, Any] | None = None,
        components: Sequence[StackComponent] | None = None,
        **ignored: Any,
    ) -> Pipeline[P]:
        """A copy with some options changed: ``my_pipeline.with_options(run_name="x")()``."""
        return Pipeline(
            self.entrypoint,
            name=self.name,
            run_name=run_name if run_name is not None else self.run_name,
            model=model if model is not None else self.model,
            extra={**self.extra, **(extra or {})},
            components=self.components if components is None else components,
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> PipelineRun:
        with pipeline_run(
            self.name,
            run_name=self.run_name,
            model=self.model,
            extra=self.extra,
            components=self.components,
        ) as run:
            self.entrypoint(*args, **kwargs)
        return run

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


@overload
def pipeline(func: Callable[P, Any]) -> Pipeline[P]: ...
@overload
def pipeline(
    func: None = None,
    *,
    name: str | None = None,
    run_name: str | None = None,
    model: Model | None = None,
    extra: dict[str, Any] | None = None,
    components: Sequence[StackComponent] = (),
    **ignored: Any,
) -> Callable[[Callable[P, Any]], Pipeline[P]]: ...


def pipeline(
    func: Callable[P, Any] | None = None,
    *,
    name: str | None = None,
    run_name: str | None = None,
    model: Model | None = None,
    extra: dict[str, Any] | None = None,
    components: Sequence[StackComponent] = (),
    **ignored: Any,
) -> Pipeline[P] | Callable[[Callable[P, Any]], Pipeline[P]]:
    """Make ``func`` a pipeline: ``@pipeline`` or ``@pipeline(extra=..., model=..., ...)``.

    ``run_name`` names every run (the default is unique: pipeline name and
    time); ``extra`` is readable through ``get_pipeline_context().extra``;
    ``components`` contribute run and step metadata.
    """

    def wrap(f: Callable[P, Any]) -> Pipeline[P]:
        return Pipeline(
            f, name=name, run_name=run_name, model=model, extra=extra, components=components
        )

    return wrap(func) if func is not None else wrap
