"""metastream: event-sourced metadata for ML pipelines.

The reference's examples run with only their imports changed::

    from metastream import log_metadata, step, pipeline, Client
    from metastream import StorageSize, DType, Uri, Path
"""

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

__version__ = "0.1.0"

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
]
