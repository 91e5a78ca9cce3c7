"""Is Redis set up to keep what the collector answered 200 for?

Between the collector's answer and a consumer's commit, an event exists only in the Redis Stream.
A Redis that restarts without an append-only file comes back empty (an RDB snapshot keeps only
what was there at the last save), and one that evicts keys under ``allkeys-*`` may delete the
stream itself. So the consumers refuse to start on such a Redis in production (``DEBUG=0``)
unless ``PZ_REDIS_VOLATILE_OK=1`` says the operator accepts the loss, every long-running process
logs an error at start-up, and ``/healthz`` shows it.

It is read from ``INFO persistence`` and ``INFO memory``: managed Redis services often disable
``CONFIG GET``, never ``INFO``.
"""

import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# Evicting any key, the stream's included; ``volatile-*`` evict only keys that expire, which the
# stream never does, and ``noeviction`` refuses writes when memory is full (the collector then
# answers an error, and the client sends again).
EVICTING_POLICIES = frozenset({"allkeys-lru", "allkeys-lfu", "allkeys-random"})
SETTINGS_NEEDED = "appendonly yes, appendfsync everysec, maxmemory-policy noeviction"


@dataclass(frozen=True)
class RedisPersistence:
    aof: bool
    maxmemory_policy: str

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.aof:
            found.append("appendonly is off: a restart of Redis loses every event accepted and not yet stored")
        if self.maxmemory_policy in EVICTING_POLICIES:
            found.append(f"maxmemory-policy is {self.maxmemory_policy}: Redis may evict the event stream")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"aof": self.aof, "maxmemory_policy": self.maxmemory_policy, "durable": not self.problems}


def redis_persistence(client: redis.Redis) -> RedisPersistence:
    pipe = client.pipeline(transaction=False)
    pipe.info("persistence")
    pipe.info("memory")
    persistence, memory = pipe.execute()
    return RedisPersistence(
        aof=bool(int(persistence.get("aof_enabled", 0))),
        maxmemory_policy=str(memory.get("maxmemory_policy", "")),
    )


def redis_persistence_problem(client: redis.Redis, *, process: str) -> str | None:
    """Log an error when Redis may lose accepted events, for a process starting up, and return
    what to tell the operator (None when Redis keeps them)."""
    problems = redis_persistence(client).problems
    if not problems:
        return None
    message = (
        f"Redis at {client.connection_pool.connection_kwargs.get('host')} may lose accepted events "
        f"({'; '.join(problems)}). Configure it with: {SETTINGS_NEEDED}; "
        "or set PZ_REDIS_VOLATILE_OK=1 to accept the loss."
    )
    logger.error("%s: %s", process, message)
    return message


def redis_persistence_refused(client: redis.Redis, *, process: str) -> str | None:
    """What stops a consumer from starting: a problem, in production, not accepted by the operator."""
    problem = redis_persistence_problem(client, process=process)
    if problem and not settings.DEBUG and not settings.PZ_REDIS_VOLATILE_OK:
        return problem
    return None


def redis_persistence_log(*, process: str) -> None:
    """At the start of a process that does not wait for Redis (a web worker, a Celery worker): log
    an error if Redis may lose accepted events. A Redis not answering yet is left to the requests."""
    if not settings.REDIS_URL:
        return
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        redis_persistence_problem(client, process=process)
    except redis.RedisError:
        pass
    finally:
        client.close()
