"""Stack components: metadata contributed by the tools a pipeline runs with.

A component overrides ``get_pipeline_run_metadata(run_id)`` (called once
when a run starts) and/or ``get_step_run_metadata(info)`` (called after each
step function, whether it succeeded or failed). What they return is logged
to the run or the step, keyed to the component (``component`` on the event,
shown by ``metastream history``). A component that raises, or returns a
value that cannot be logged, is skipped with a warning; the pipeline
carries on.

Components are attached to a pipeline (``@pipeline(components=[...])``) or
to every pipeline with ``METASTREAM_COMPONENTS`` (comma-separated: ``git``,
``environment``, or ``package.module:Class``).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

from metastream.schemas import MetadataType

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(class_name: str) -> str:
    """``MyTracker`` -> ``my_tracker``; an acronym stays one word, and so does a brand with
    a capital run (``GCPStore`` -> ``gcp_store``, ``MLflowTracker`` -> ``mlflow_tracker``):
    a single capital is never a word of its own, it joins the word after it."""
    words: list[str] = []
    carry = ""
    for word in _CAMEL_BOUNDARY.split(class_name):
        if len(word) == 1 and word.isupper():
            carry += word
            continue
        words.append(carry + word)
        carry = ""
    if carry:
        words.append(carry)
    return "_".join(words).lower()


@dataclass(frozen=True)
class StepRunInfo:
    """What a component learns about a step that just ran."""

    step_run_id: uuid.UUID
    step_name: str
    run_id: uuid.UUID
    run_name: str
    pipeline_name: str
    status: str
    """``completed`` or ``failed``."""
    error: str | None
    started: datetime.datetime
    finished: datetime.datetime

    @property
    def pipeline_step_name(self) -> str:  # the reference's name for the step's name
        return self.step_name


class StackComponent:
    """Base class: override either method to contribute metadata."""

    @property
    def name(self) -> str:
        """The component's name, recorded with its metadata (the class name, snake_case)."""
        return snake_case(type(self).__name__)

    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        return {}

    def get_step_run_metadata(self, info: StepRunInfo) -> dict[str, MetadataType]:
        return {}


class GitComponent(StackComponent):
    """The git commit, branch and whether the working tree was dirty, for each run."""

    name = "git"

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory

    def _git(self, *args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.directory,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        commit = self._git("rev-parse", "HEAD")
        if commit is None:
            return {}
        status = self._git("status", "--porcelain")
        return {
            "git": {
                "commit": commit,
                "branch": self._git("rev-parse", "--abbrev-ref", "HEAD") or "",
                "dirty": bool(status),
            }
        }


DEFAULT_PACKAGES = ("metastream", "numpy", "pandas", "scikit-learn", "torch", "tensorflow")


class EnvironmentComponent(StackComponent):
    """Python, platform, host and the versions of chosen packages, for each run."""

    name = "environment"

    def __init__(self, packages: tuple[str, ...] = DEFAULT_PACKAGES) -> None:
        self.packages = packages

    def get_pipeline_run_metadata(self, run_id: uuid.UUID) -> dict[str, MetadataType]:
        versions: dict[str, MetadataType] = {}
        for package in self.packages:
            try:
                versions[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                continue
        return {
            "environment": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "host": socket.gethostname(),
            },
            "packages": versions,
        }


BUILT_IN: dict[str, type[StackComponent]] = {
    "git": GitComponent,
    "environment": EnvironmentComponent,
}


def configured_components(spec: str | None = None) -> list[StackComponent]:
    """The components named in ``METASTREAM_COMPONENTS`` (or ``spec``)."""
    spec = os.environ.get("METASTREAM_COMPONENTS", "") if spec is None else spec
    out: list[StackComponent] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item in BUILT_IN:
            out.append(BUILT_IN[item]())
            continue
        module_name, _, attribute = item.partition(":")
        if not attribute:
            raise ValueError(
                f"METASTREAM_COMPONENTS: {item!r} is neither a built-in component "
                f"({', '.join(BUILT_IN)}) nor 'package.module:Class'"
            )
        try:
            found: Any = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"METASTREAM_COMPONENTS: cannot load {item!r}: {exc}") from exc
        component = found() if isinstance(found, type) else found
        if not isinstance(component, StackComponent):
            raise ValueError(f"METASTREAM_COMPONENTS: {item!r} is not a StackComponent")
        out.append(component)
    return out


__all__ = [
    "EnvironmentComponent",
    "GitComponent",
    "StackComponent",
    "StepRunInfo",
    "configured_components",
]
