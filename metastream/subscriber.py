"""For services that subscribe to metastream's events with FastStream, by hand.

Most services want :func:`metastream.subscribe` (``metastream.subscriptions``):
a group of their own that first catches up from the event log (so trimmed
history reaches them too), then follows the stream with no gap and no
duplicate, with filters, retries and dead letters (docs/subscribing.md). What
follows is the bare way, for a FastStream app of your own that only needs
what is still in the stream:

    from faststream.redis import RedisBroker, StreamSub
    from metastream.schemas import AnyEvent
    from metastream.subscriber import decode_message

    broker = RedisBroker(url, serializer=None)

    @broker.subscriber(
        stream=StreamSub("metastream:events", group="alerts", consumer="alerts-1"),
        decoder=decode_message,
    )
    async def on_event(event: AnyEvent) -> None: ...

``decode_message`` turns a stream entry (one ``__data__`` field holding the
msgpack bytes) into the event, with metadata values of their logged types.
``serializer=None`` hands it to the handler as it is: FastStream's default
(pydantic) validation does not know msgspec structs.
"""

from __future__ import annotations

from typing import Any

from metastream.schemas import AnyEvent, decode_event


async def decode_message(message: Any) -> AnyEvent:
    """FastStream decoder: the message's body as a metastream event.

    Raises ``DecodeError`` (a ``ValueError``) for an entry that is not one;
    FastStream then handles it by the subscriber's ack policy.
    """
    body: bytes = message.body
    return decode_event(body)
