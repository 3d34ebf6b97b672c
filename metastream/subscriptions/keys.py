"""The Redis keys a subscription uses, all named after its stream and group.

One module owns them, so that deleting a subscription (``forget``) removes
exactly what it made. ``metastream:events`` and group ``alerts`` give::

    metastream:events:sub:alerts        hash: the switch-over's state (state.py)
    metastream:events:sub:alerts:seen   set: event ids delivered by the catch-up that
                                        the group may deliver again (state.py)
    metastream:events:sub:alerts:runs   hash: run -> pipeline (knowledge.py)
    metastream:events:sub:alerts:lock   string: held during the switch-over
    metastream:events:dead:alerts       stream: the group's dead letters

Keys are per stream because one Redis may carry several streams (tests do).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubscriptionKeys:
    stream: str
    group: str

    @property
    def state(self) -> str:
        """Hash: the stage of the switch-over and its positions."""
        return f"{self.stream}:sub:{self.group}"

    @property
    def lock(self) -> str:
        """String: held by the process doing the group's switch-over."""
        return f"{self.state}:lock"

    @property
    def seen(self) -> str:
        """Set: ids of events the catch-up delivered that the group may hold too."""
        return f"{self.state}:seen"

    @property
    def runs(self) -> str:
        """Hash: what the pipeline filter learned about runs."""
        return f"{self.state}:runs"

    @property
    def dead_letters(self) -> str:
        """Stream: events the handler failed on ``max_deliveries`` times, with the reason."""
        return f"{self.stream}:dead:{self.group}"

    def all(self) -> tuple[str, ...]:
        """Every key but the dead letters (kept until read)."""
        return (self.state, self.seen, self.runs, self.lock)
