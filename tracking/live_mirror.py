"""The live profiles that the recommendation API reads, mirrored in Redis.

The API reads a visitor's live profile on every request. From PostgreSQL that read was a round
trip and a query (0.3-0.6 ms). From Redis, it is one MGET. The database stays the record; the
mirror is a cache of it that is never older than the database:

- The consumer writes every profile it touches while it still holds their row locks
  (``LockedProfiles.save``). Two consumers therefore write one profile in the order in which they
  changed it. The mirror may be ahead of the database by a transaction that is about to commit, or
  about to be retried from the stream.
- A read the mirror cannot answer goes to the database and fills the mirror only where the mirror
  has nothing yet (SET NX). A fill that raced with a consumer's write never replaces that write.
- The entry for a profile merged into another is a pointer to it. The entry for a visitor with no
  profile says so, so that serving a first-time visitor costs no query.
- An erasure deletes the entries of the people erased (``tracking.privacy``).

The consumer also notes which profiles' session (recent views, cart) it changed, in a Redis set that
``personalization.session_lists`` takes them from to score their lists ahead of their next request.

Without Redis (the embedded mode) there is no mirror, and ``live_profile`` reads the database.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from django.conf import settings
from django.core.cache import cache

from config.cache import redis_cache

MIRROR_SECONDS = 86_400  # an entry not written again within a day is read from the database again
_PREFIX = "live:"
ENTRY_NONE = msgspec.json.encode(["none"])  # no such profile
ENTRY_PROFILE_PREFIX = b'["profile",'  # how every profile's entry starts (``entry_of_profile``)

CHANGED_SESSIONS = "live:changed-sessions"  # profile keys (see ``sessions_mark``)
CHANGED_SESSIONS_SECONDS = 3_600
LIVE_JSONS = ("recently_viewed", "cart", "category_affinity", "brand_affinity")
LIVE_COLUMNS = (*LIVE_JSONS, "orders", "last_seen_at", "sessions")  # of a profile's entry, in this order


def mirrored() -> bool:
    return bool(settings.REDIS_URL)


def entry_of_profile(jsons: Sequence[Any], orders: int, last_seen_at: datetime | None, sessions: int) -> bytes:
    """The entry of a profile: its ``LIVE_JSONS`` columns (decoded values, or the JSON texts
    PostgreSQL sent as ``msgspec.Raw``), its orders, when it was last seen and its sessions."""
    return msgspec.json.encode(
        ["profile", *jsons, orders, last_seen_at.isoformat() if last_seen_at else None, sessions]
    )


def profile_columns(entry: Sequence[Any]) -> tuple[Any, ...]:
    """The ``LIVE_COLUMNS`` of a profile's entry (decoded), as the database has them. An entry
    written before the sessions were mirrored has them as None (it is rewritten within a day)."""
    columns = list(entry[1:])
    if len(columns) == len(LIVE_COLUMNS) - 1:
        columns.append(None)
    *rest, last_seen_at, sessions = columns
    return (*rest, datetime.fromisoformat(last_seen_at) if last_seen_at else None, sessions)


def entry_of_pointer(target_key: str) -> bytes:
    return msgspec.json.encode(["merged", target_key])


def mirror_write(entries: Mapping[str, bytes], *, only_new: bool = False) -> None:
    """Write entries by profile key (``u:…``, ``a:…``); ``only_new``: a fill from the database."""
    if mirrored() and entries:
        prefixed = dict(zip(cache_keys(list(entries)), entries.values(), strict=True))
        redis_cache().set_many_raw(prefixed, MIRROR_SECONDS, only_new=only_new)


def profile_keys(user_id: str, anonymous_id: str) -> list[str]:
    """The profile keys a visitor's live profile is looked up by, in order: the person's, the browser's."""
    return ([f"u:{user_id}"] if user_id else []) + ([f"a:{anonymous_id}"] if anonymous_id else [])


def cache_keys(keys: Sequence[str]) -> list[str]:
    """The cache keys of the entries of these profile keys (to read them along with others)."""
    return [_PREFIX + key for key in keys]


def decoded(raw: Sequence[bytes | None]) -> list[list[Any] | None]:
    """Entries as read: ``["profile", *columns]``, ``["merged", key]``, ``["none"]``, or None
    where the mirror has none."""
    return [msgspec.json.decode(value) if value is not None else None for value in raw]


def mirror_read(keys: Sequence[str]) -> list[list[Any] | None]:
    """The entries of these profile keys, decoded (see ``decoded``)."""
    return decoded(mirror_read_raw(keys))


def mirror_read_raw(keys: Sequence[str]) -> list[bytes | None]:
    """The entries of these profile keys as stored (for ``tracking.selectors.live_profile``)."""
    return redis_cache().get_many_raw(cache_keys(keys))


def sessions_mark(keys: Iterable[str]) -> None:
    """Note that these profiles' sessions changed (one round trip), unless ``PZ_SESSION_LISTS`` is
    off. If nobody takes them for an hour (nothing scores sessions), the set expires rather than grow."""
    members = list(keys)
    if mirrored() and settings.PZ_SESSION_LISTS and members:
        redis_cache().set_add(CHANGED_SESSIONS, members, CHANGED_SESSIONS_SECONDS)


def sessions_take(count: int) -> list[str]:
    """Up to ``count`` of the profile keys noted by ``sessions_mark``, removed from the set."""
    return redis_cache().set_pop(CHANGED_SESSIONS, count) if mirrored() else []


def sessions_waiting() -> int:
    """How many profiles noted by ``sessions_mark`` are waiting to be taken."""
    return redis_cache().set_size(CHANGED_SESSIONS) if mirrored() else 0


def mirror_forget(keys: Iterable[str]) -> None:
    if mirrored():
        cache.delete_many(cache_keys(list(keys)))
