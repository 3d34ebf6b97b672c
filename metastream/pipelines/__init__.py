"""The pipeline API: steps, pipelines, their context, stack components, log_metadata."""

from metastream.pipelines.components import (
    EnvironmentComponent,
    GitComponent,
    StackComponent,
    StepRunInfo,
)
from metastream.pipelines.context import (
    PipelineContext,
    StepContext,
    get_pipeline_context,
    get_step_context,
)
from metastream.pipelines.decorators import Pipeline, Step, pipeline, step
from metastream.pipelines.emit import LogHandle
from metastream.pipelines.log import log_metadata
from metastream.pipelines.model import Model
from metastream.pipelines.runs import PipelineRun, pipeline_run

__all__ = [
    "EnvironmentComponent",
    "GitComponent",
    "LogHandle",
    "Model",
    "Pipeline",
    "PipelineContext",
    "PipelineRun",
    "StackComponent",
    "Step",
    "StepContext",
    "StepRunInfo",
    "get_pipeline_context",
    "get_step_context",
    "log_metadata",
    "pipeline",
    "pipeline_run",
    "step",
]
