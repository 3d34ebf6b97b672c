"""metastream: event-sourced metadata for ML pipelines.

The reference's examples run with only their imports changed::

    from metastream import log_metadata, step, pipeline, Client
    from metastream import StorageSize, DType, Uri, Path

The public names are loaded when first used (a module ``__getattr__``), so
``import metastream`` is cheap, and a process that only consumes or
subscribes (``metastream.consumer``, ``metastream.subscribe``) never loads
the producer nor registers its exit and fork hooks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "Client": "metastream.query",
    "DType": "metastream.schemas",
    "MetadataType": "metastream.schemas",
    "Model": "metastream.pipelines",
    "Path": "metastream.schemas",
    "PipelineRun": "metastream.pipelines",
    "StackComponent": "metastream.pipelines",
    "StepRunInfo": "metastream.pipelines",
    "StorageSize": "metastream.schemas",
    "Uri": "metastream.schemas",
    "flush": "metastream.producer",
    "get_pipeline_context": "metastream.pipelines",
    "get_step_context": "metastream.pipelines",
    "log_metadata": "metastream.pipelines",
    "pipeline": "metastream.pipelines",
    "pipeline_run": "metastream.pipelines",
    "step": "metastream.pipelines",
    "subscribe": "metastream.subscriptions",
}

__all__ = [
    "Client",
    "DType",
    "MetadataType",
    "Model",
    "Path",
    "PipelineRun",
    "StackComponent",
    "StepRunInfo",
    "StorageSize",
    "Uri",
    "flush",
    "get_pipeline_context",
    "get_step_context",
    "log_metadata",
    "pipeline",
    "pipeline_run",
    "step",
    "subscribe",
]

if TYPE_CHECKING:
    from metastream.pipelines import (
        Model,
        PipelineRun,
        StackComponent,
        StepRunInfo,
        get_pipeline_context,
        get_step_context,
        log_metadata,
        pipeline,
        pipeline_run,
        step,
    )
    from metastream.producer import flush
    from metastream.query import Client
    from metastream.schemas import DType, MetadataType, Path, StorageSize, Uri
    from metastream.subscriptions import subscribe


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'metastream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
