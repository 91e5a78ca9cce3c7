"""The Redis Stream between the collector and the consumers (used when REDIS_URL is set).

Each entry is one request's batch (its accepted events and what was dropped), appended by the
collector before it answers. Consumers of one group read entries, process them, then acknowledge
and delete them; an entry whose consumer died stays pending and is claimed by another (or by the
same name after a restart), so nothing appended is lost.
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec
import redis
from django.conf import settings

STREAM = "pz:events"
GROUP = "pz-consumers"
DEAD_LETTERS = "pz:events:dead"

Entry = tuple[str, dict[str, Any]]


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def stream_append(batch: Mapping[str, Any]) -> str:
    entry_id: Any = client().xadd(STREAM, {"b": msgspec.json.encode(batch)})
    return str(entry_id.decode())


# KEYS: the stream, then the keys a decision was made on; ARGV: the entry's "b", then the value
# each of those keys held. Appends (and answers the entry's id) only if every key still holds it.
APPEND_IF_UNCHANGED = """
local values = redis.call('MGET', unpack(KEYS, 2))
for i = 1, #values do
  if values[i] ~= ARGV[i + 1] then
    return 0
  end
end
return redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])
"""


@lru_cache(maxsize=4)
def _append_script(redis_client: redis.Redis) -> Any:
    return redis_client.register_script(APPEND_IF_UNCHANGED)


def stream_append_if_unchanged(batch: Mapping[str, Any], expected: Mapping[str, bytes]) -> bool:
    """Append ``batch``, in the same atomic step as checking that each key of ``expected`` still
    holds its value (the collector's consent decision was made on them); False, with nothing
    appended, if one changed."""
    script = _append_script(client())
    appended = script(keys=[STREAM, *expected], args=[msgspec.json.encode(batch), *expected.values()])
    return appended != 0


def ensure_group() -> None:
    try:
        client().xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _decode(raw: Sequence[Any]) -> list[Entry]:
    entries = []
    for entry_id, fields in raw:
        if fields and b"b" in fields:  # a claimed entry deleted meanwhile comes back without fields
            entries.append((entry_id.decode(), msgspec.json.decode(fields[b"b"])))
    return entries


def read_new(consumer: str, *, count: int, block_ms: int | None) -> list[Entry]:
    """Up to ``count`` entries no consumer of the group was given yet, waiting up to ``block_ms``
    for the first (None: not at all)."""
    response: Any = client().xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms)
    return _decode(response[0][1]) if response else []


def read_own_pending(consumer: str, *, count: int) -> list[Entry]:
    """Entries delivered to this consumer name and never acknowledged (it died, or failed)."""
    response: Any = client().xreadgroup(GROUP, consumer, {STREAM: "0"}, count=count)
    return _decode(response[0][1]) if response else []


def claim_stale(consumer: str, *, idle_ms: int, count: int) -> list[Entry]:
    """Take over entries another consumer has held for ``idle_ms`` without acknowledging."""
    response: Any = client().xautoclaim(STREAM, GROUP, consumer, min_idle_time=idle_ms, start_id="0-0", count=count)
    return _decode(response[1])


def acknowledge(entry_ids: Sequence[str]) -> None:
    if entry_ids:
        pipe = client().pipeline(transaction=False)
        pipe.xack(STREAM, GROUP, *entry_ids)
        pipe.xdel(STREAM, *entry_ids)
        pipe.execute()


def backlog() -> dict[str, int]:
    """Entries in the stream (waiting or pending) and entries pending (delivered, not acknowledged)."""
    length = int(client().xlen(STREAM))
    groups = client().xinfo_groups(STREAM) if length else []
    group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
    return {"length": length, "pending": int(group["pending"]) if group else 0}
