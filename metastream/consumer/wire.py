"""The consumer's Redis wire: commands packed by hiredis, XREADGROUP replies left as parsed.

Profiled in the consumer (``py-spy`` over ``metastream bench consumer``),
redis-py spent about a fifth of the process's time in per-entry Python:

* packing each command argument in Python (``AbstractConnection.pack_command``),
  which for an XACK of 1,000 ids is 1,000 rounds of encoding and
  concatenating: 6% of the consumer. redis-py's synchronous client packs with
  hiredis's C ``pack_command`` when hiredis is installed; its asyncio client
  never does. :class:`PackingConnection` (and its Unix-socket twin) does, for
  every command of the client it is given to.
* turning every XREADGROUP entry into a ``dict`` and every reply into
  redis-py's legacy shape (``parse_xread_resp3_to_resp2_legacy``,
  ``parse_stream_list``, ``pairs_to_dict``): another 6%, for structures the
  consumer takes apart again at once. :func:`raw_xreadgroup` keeps hiredis's
  lists (``[id, [field, value, ...]]``) and only turns a RESP3 map of streams
  into the ``[(stream, entries)]`` pairs FastStream iterates.

``entries.parse_batch`` accepts both shapes (a dict of fields, or the flat
list), so a reply read before the callback was installed is handled too.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as aredis
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    UnixDomainSocketConnection,
    parse_url,
)


def _packed(args: tuple[Any, ...]) -> list[bytes] | None:
    """``args`` as one RESP command; a command name with spaces (``"CONFIG GET"``) is split.

    ``None`` when hiredis refuses an argument's type: the caller packs such a
    command as redis-py does, which accepts some hiredis does not
    (``bytearray``) and refuses the rest (``bool``, ``None``) with its own
    ``DataError``.
    """
    name = args[0]
    if isinstance(name, str):
        name = name.encode()
    if b" " in name:
        args = (*name.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except TypeError:
        return None


class PackingConnection(Connection):
    """A TCP connection whose commands hiredis packs."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _packed(args) or super().pack_command(*args)


class PackingUnixConnection(UnixDomainSocketConnection):
    """A Unix-socket connection whose commands hiredis packs."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _packed(args) or super().pack_command(*args)


def connection_class(url: str) -> type[Connection] | type[UnixDomainSocketConnection] | None:
    """The packing connection class for ``url``; ``None`` (redis-py's own) for TLS."""
    chosen = parse_url(url).get("connection_class", Connection)
    if chosen is UnixDomainSocketConnection:
        return PackingUnixConnection
    if chosen is Connection:
        return PackingConnection
    return None  # rediss:// keeps redis-py's SSLConnection


def client(url: str) -> aredis.Redis:
    """An asyncio client for ``url`` (as ``Redis.from_url``) whose commands hiredis packs."""
    options: dict[str, Any] = dict(parse_url(url))
    chosen = connection_class(url)
    if chosen is not None:
        options["connection_class"] = chosen  # parse_url's choice would win in from_url
    return aredis.Redis.from_pool(ConnectionPool(**options))


def broker_options(url: str) -> dict[str, Any]:
    """Options for FastStream's ``RedisBroker`` (its keyword arguments win over the URL's)."""
    chosen = connection_class(url)
    return {} if chosen is None else {"connection_class": chosen}


def raw_xreadgroup(response: Any, **_options: Any) -> Any:
    """XREADGROUP's reply as hiredis parsed it, as ``[(stream, entries)]`` pairs."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: a map of stream -> entries
        return list(response.items())
    return response


def install(client: aredis.Redis) -> None:
    """Leave ``client``'s XREADGROUP replies unconverted (see the module docstring)."""
    client.set_response_callback("XREADGROUP", raw_xreadgroup)
