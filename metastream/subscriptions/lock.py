"""The switch-over's lock: one process of a group catches up, the others wait.

A Redis string holding the holder's consumer name (``host-pid``), with a
time to live renewed after every page of the catch-up. A process that died
holding it does not make the others wait for the time to live when it can be
known dead: a holder with this process's own name (a restarted container
keeps its hostname and often its pid) or a holder on this machine whose pid
is gone is replaced at once.
"""

from __future__ import annotations

import asyncio
from typing import Final

import redis.asyncio as aredis

from metastream.processes import local_consumer_pid, pid_alive

_TAKE_OVER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SwitchLock:
    def __init__(self, client: aredis.Redis, key: str, holder: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.holder = holder
        self.ttl_ms = int(ttl * 1000)

    def _gone(self, holder: str) -> bool:
        if holder == self.holder:
            return True
        pid = local_consumer_pid(holder)
        return pid is not None and not pid_alive(pid)

    async def acquire(self, poll: float = 0.1) -> None:
        while not await self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            raw = await self.client.get(self.key)
            holder = raw.decode() if isinstance(raw, bytes) else None
            if holder is not None and self._gone(holder):
                taken = await self.client.eval(
                    _TAKE_OVER, 1, self.key, holder, self.holder, str(self.ttl_ms)
                )
                if taken:
                    return
            await asyncio.sleep(poll)

    async def renew(self) -> None:
        await self.client.eval(_RENEW, 1, self.key, self.holder, str(self.ttl_ms))

    async def release(self) -> None:
        await self.client.eval(_RELEASE, 1, self.key, self.holder)
