"""The non-blocking producer: publish encoded events to the Redis stream.

::

    from metastream.producer import get_producer
    from metastream.schemas import encode_event

    get_producer().publish(encode_event(event))   # microseconds; never waits on Redis

See ``producer.py`` for the guarantees (at-least-once, spool, SIGKILL, fork,
exit), ``segments.py`` for the memory-mapped segments, ``sender.py`` for how
batches are sent, ``drain.py`` for the stack's spool drainer and
``summary.py``/``setaside.py`` for what waits in the spool.
"""

from metastream.producer.default import flush, get_producer
from metastream.producer.drain import SpoolDrainer
from metastream.producer.producer import Producer
from metastream.producer.setaside import SetAsideFile, set_aside_files
from metastream.producer.stats import ProducerStats
from metastream.producer.summary import SpoolSummary, spool_summary

__all__ = [
    "Producer",
    "ProducerStats",
    "SetAsideFile",
    "SpoolDrainer",
    "SpoolSummary",
    "flush",
    "get_producer",
    "set_aside_files",
    "spool_summary",
]
