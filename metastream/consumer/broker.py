"""The FastStream broker and batch subscriber that the consumer and every subscription read with.

One subscriber per broker, on ``stream`` as ``consumer`` of ``group``: its
entries reach the handler as :class:`~metastream.consumer.entries.Entry`
lists, unconverted (``entries.py``), and nothing is acknowledged by
FastStream (``AckPolicy.MANUAL``): the handler acks what it is done with.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub

from metastream.consumer import wire
from metastream.consumer.entries import decode_batch, parse_batch

FASTSTREAM_LOGGER = logging.getLogger("metastream.faststream")
"""FastStream's logs, through the standard logging tree (no colours in log files)."""


def batch_subscriber(
    url: str,
    *,
    stream: str,
    group: str,
    consumer: str,
    max_records: int,
    graceful_timeout: float,
    title: str,
    description: str,
) -> tuple[RedisBroker, Any]:
    """A broker for ``url`` and its batch subscriber (to decorate the handler with)."""
    broker = RedisBroker(
        url,
        # No validation of the handler's argument: the decoder already
        # built it, and pydantic would copy every entry for nothing.
        serializer=None,  # type: ignore[arg-type]  # typed too narrowly: None is supported
        logger=FASTSTREAM_LOGGER,
        log_level=logging.DEBUG,  # every batch's "Received"/"Processed" only at DEBUG
        graceful_timeout=graceful_timeout,
        # Commands packed by hiredis, not in Python (``wire.py``).
        **wire.broker_options(url),
    )
    subscriber = broker.subscriber(
        stream=StreamSub(
            stream,
            group=group,
            consumer=consumer,
            batch=True,
            max_records=max_records,  # None would read the whole stream at once
        ),
        parser=parse_batch,
        decoder=decode_batch,
        ack_policy=AckPolicy.MANUAL,
        title=title,
        description=description,
    )
    return broker, subscriber
