"""Views built from the event log: the registry, latest values, history, and the store."""

from metastream.projections.base import Projection
from metastream.projections.latest import LatestProjection
from metastream.projections.registry import RegistryProjection
from metastream.projections.resolve import (
    NOW,
    Rejected,
    Resolution,
    Resolved,
    Waiting,
    resolve,
    run_async,
    run_sync,
)
from metastream.projections.store import Progress, Store, default_projections

__all__ = [
    "NOW",
    "LatestProjection",
    "Progress",
    "Projection",
    "RegistryProjection",
    "Rejected",
    "Resolution",
    "Resolved",
    "Store",
    "Waiting",
    "default_projections",
    "resolve",
    "run_async",
    "run_sync",
]
