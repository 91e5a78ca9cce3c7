"""Django's Redis cache, without building a redis client object for every cache operation.

Django's RedisCacheClient.get_client() returns ``redis.Redis(connection_pool=pool)`` on each
call. With redis-py 8 constructing one fills a table of ~170 response callbacks (~0.25 ms),
which dominated the collector's per-request cost. A redis.Redis object is thread-safe and holds
no state beyond its pool, so one per pool serves every call.
"""

import hashlib
import re
from collections.abc import Iterator
from typing import Any, cast

from django.core.cache import cache
from django.core.cache.backends import redis as django_redis


class ReusingRedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own private helpers (not in django-stubs): the same pool choice as the parent's.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


_SET_MANY = """
local ttl = ARGV[2]
for i, key in ipairs(KEYS) do
  if ARGV[1] == '1' then
    redis.call('SET', key, ARGV[i + 2], 'EX', ttl, 'NX')
  else
    redis.call('SET', key, ARGV[i + 2], 'EX', ttl)
  end
end
return #KEYS
"""


_SET_MANY_WHERE = """
local n = #KEYS / 2
local written, changed = 0, {}
for i = 1, n do
  local guard = redis.call('GET', KEYS[n + i])
  if guard and string.sub(guard, 1, #ARGV[2]) == ARGV[2] then
    local expected = ARGV[n + i + 2]
    if expected == '' or redis.sha1hex(guard) == expected then
      redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[1])
      written = written + 1
    else
      changed[#changed + 1] = i - 1
    end
  end
end
return {written, changed}
"""


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
        self._scripts: dict[tuple[int, str], Any] = {}  # each Lua script, registered once per client

    def validate_key(self, key: str) -> None:
        """Django checks every key, character by character, for memcached's limits (warnings only);
        they do not apply to Redis, and the check cost ~5 µs per key on the collector's path."""

    def get_many_raw(self, keys: list[str]) -> list[bytes | None]:
        """The stored bytes under ``keys`` (None where missing), in one MGET and without decoding:
        for a caller that decodes, and memoises the decoding of, values it knows the shape of
        (the consent states the collector reads for every event). ``loads`` decodes one."""
        client = self._cache.get_client(None)
        values: list[Any] = client.mget([self.make_key(key) for key in keys])
        return values

    def set_many_raw_where(
        self,
        values: dict[str, bytes],
        guards: list[str],
        prefix: bytes,
        timeout: int,
        expected: list[bytes | None] | None = None,
    ) -> tuple[int, list[int]]:
        """Store bytes under keys as ``set_many_raw`` does, each only where the value under its
        guard key (the same position in ``guards``) starts with ``prefix`` and, where ``expected``
        gives one, is still exactly that value; checked and written in one script, so nothing
        changes a guard in between. Returns how many were written, and the positions whose guard
        had the prefix but another value than expected."""
        if not values:
            return 0, []
        script = self._script(_SET_MANY_WHERE)
        keys = [self.make_key(key) for key in [*values, *guards]]
        # Redis's own SHA-1 (redis.sha1hex) is what the script can compare with: an equality check.
        wanted = expected or [None] * len(values)
        digests = [hashlib.sha1(v, usedforsecurity=False).hexdigest() if v is not None else "" for v in wanted]
        written, changed = script(keys=keys, args=[timeout, prefix, *values.values(), *digests])
        return int(written), [int(position) for position in changed]

    def set_add(self, key: str, members: list[str], timeout: int) -> None:
        """Add members to the Redis set under ``key``, which expires ``timeout`` seconds from now
        (one round trip)."""
        client = self._cache.get_client(None, write=True)
        with client.pipeline(transaction=False) as pipe:
            pipe.sadd(self.make_key(key), *members)
            pipe.expire(self.make_key(key), timeout)
            pipe.execute()

    def set_pop(self, key: str, count: int) -> list[str]:
        """Up to ``count`` members of the Redis set under ``key``, removed from it."""
        taken: Any = self._cache.get_client(None, write=True).spop(self.make_key(key), count)
        return [member.decode() for member in taken or []]

    def set_size(self, key: str) -> int:
        return int(self._cache.get_client(None).scard(self.make_key(key)))

    def keys_starting(self, prefix: str, batch: int = 1_000) -> Iterator[list[str]]:
        """The keys (as given to the cache) that start with ``prefix``, a SCAN step at a time: for
        an occasional walk over every key of a kind in a background process, never on a
        request's path (SCAN visits the whole database)."""
        made = self.make_key(prefix)
        cut = len(made) - len(prefix)
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", made) + "*"
        client: Any = self._cache.get_client(None)
        cursor = 0
        while True:
            cursor, found = client.scan(cursor, match=pattern, count=batch)
            if found:
                yield [key.decode()[cut:] for key in found]
            if not cursor:
                return

    def swap(self, key: str, value: bytes) -> bytes | None:
        """Store ``value`` under ``key`` (no expiry) and answer what it held before, in one atomic step."""
        before: Any = self._cache.get_client(None, write=True).set(self.make_key(key), value, get=True)
        return cast(bytes | None, before)

    def loads(self, value: bytes) -> Any:
        return self._cache._serializer.loads(value)  # type: ignore[attr-defined]

    def set_many_raw(self, values: dict[str, bytes], timeout: int, *, only_new: bool = False) -> None:
        """Store bytes under keys as they are (no pickling), in one round trip; ``only_new``: keep
        the value of a key that is already there (SET NX). One script call rather than a pipeline
        of SETs: redis-py builds each pipelined command in Python (~10 µs), and the consumer
        writes a mirror entry for every profile of a micro-batch (``tracking.live_mirror``)."""
        if not values:
            return
        script = self._script(_SET_MANY)
        script(keys=[self.make_key(key) for key in values], args=[int(only_new), timeout, *values.values()])

    def _script(self, source: str) -> Any:
        """A Lua script, registered with the writing client once (its SHA is then sent, not the source)."""
        client = self._cache.get_client(None, write=True)
        key = (id(client), source)
        script = self._scripts.get(key)
        if script is None:
            script = self._scripts[key] = client.register_script(source)
        return script


def redis_cache() -> RedisCache:
    """The default cache, where the code knows it is Redis (``settings.REDIS_URL`` is set)."""
    return cast(RedisCache, cache)
