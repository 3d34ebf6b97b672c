"""Downstream subscriptions: a Python service's own consumer group, with catch-up from the log.

    import metastream

    async def on_event(event):  # at least once: deduplicate by event.id
        ...

    metastream.subscribe(on_event, group="alerts", from_="start", types="MetadataLogged").run()

See docs/subscribing.md. Modules: ``filters`` (what to deliver, read before
decoding), ``knowledge`` (run -> pipeline), ``history`` (the log through the
HTTP feed or the file), ``switchover`` (a new group: catch-up, then the
stream, nothing lost or doubled), ``follow`` (the group's entries, retries,
dead letters), ``deliver`` (the handler), ``state`` and ``keys`` (what is
kept in Redis), ``subscription`` (the public API).
"""

from metastream.subscriptions.filters import EventFilter
from metastream.subscriptions.history import FeedHistory, FileHistory, History
from metastream.subscriptions.subscription import SubscribeOptions, Subscription, subscribe

__all__ = [
    "EventFilter",
    "FeedHistory",
    "FileHistory",
    "History",
    "SubscribeOptions",
    "Subscription",
    "subscribe",
]
