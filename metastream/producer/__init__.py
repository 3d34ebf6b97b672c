"""The non-blocking producer: publish encoded events to the Redis stream.

::

    from metastream.producer import get_producer
    from metastream.schemas import encode_event

    get_producer().publish(encode_event(event))   # microseconds; never waits on Redis

See ``producer.py`` for the guarantees (at-least-once, spool, fork, exit) and
``sender.py`` for how batches are sent.
"""

from metastream.producer.default import flush, get_producer
from metastream.producer.producer import Producer
from metastream.producer.stats import ProducerStats

__all__ = ["Producer", "ProducerStats", "flush", "get_producer"]
