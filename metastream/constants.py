"""Names and defaults shared by the producer, the consumer and the CLI.

Every Redis key metastream uses is here, with why it is what it is.
"""

from __future__ import annotations

from typing import Final

STREAM: Final = "metastream:events"
"""The stream events are published to (``METASTREAM_STREAM`` overrides it)."""

DEAD_LETTER_STREAM: Final = "metastream:dead"
"""Entries that could not be decoded, or were delivered too often, with the reason."""

GROUP: Final = "metastream"
"""The consumer group that writes the event log. Other services use their own groups."""

DATA_FIELD: Final = "__data__"
"""The one field of a stream entry, holding the msgpack-encoded event.

FastStream reads ``__data__`` as a message body, so a FastStream subscriber
receives the event's bytes as they are.
"""

HOME_DIR_NAME: Final = ".metastream"
DB_FILE: Final = "metastream.db"
SPOOL_DIR: Final = "spool"
STACK_FILE: Final = "stack.json"
"""Where ``metastream up`` records the Redis it started, so producers find it."""
REDIS_DIR: Final = "redis"

PROJECTOR_ENV: Final = "METASTREAM_PROJECTOR"
"""``0``: a consumer starts no projector child (one runs elsewhere: ``metastream up``, compose)."""
