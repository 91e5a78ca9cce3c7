"""The dead-letter stream ``pz:events:dead``: events the consumers could not store, kept for a
person to look at, and sent back (redriven) once the cause is fixed.

Only an event that fails on its own content gets here (``tracking.consumer``), never an entry
because a store was down. Each dead letter is one stream entry with the fields:

- ``b``: a batch of the stream's own shape holding the one event (``{"id", "source",
  "received_at", "events": [event], "dropped": {}, "rejected": 0}``), whose id is the original
  batch id with ``/<index>`` appended;
- ``entry``: the id of the stream entry the event came in, and ``index``: its place in it;
- ``messageId``: the event's, and ``error``: what failed (the exception's repr).

Dead letters set aside before per-event splitting hold the whole batch and no ``index``.

A redrive appends ``b`` to the event stream, as it is, and deletes the dead letter, in one Redis
transaction. Its batch id is the deduplication key of processing: an event redriven twice (or
stored meanwhile) is stored once.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis
from django.conf import settings

from consent.selectors import linked_users
from consent.subjects import Identities
from tracking.stream import DEAD_LETTERS, STREAM, client

PAGE = 500


@dataclass(frozen=True)
class DeadLetter:
    id: str
    entry: str
    index: int | None
    message_id: str
    error: str
    batch: dict[str, Any]


def event_batch(batch: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The ``index``-th event of ``batch`` as a batch of its own (its id derived from the batch's)."""
    return {
        "id": f"{batch['id']}/{index}",
        "source": batch["source"],
        "received_at": batch["received_at"],
        "events": [batch["events"][index]],
        "dropped": {},
        "rejected": 0,
    }


RawLetter = tuple[bytes, dict[bytes, bytes]]


def _range(start: str = "-", end: str = "+", *, count: int) -> list[RawLetter]:
    found: Any = client().xrange(DEAD_LETTERS, min=start, max=end, count=count)
    return list(found)


def _decoded(letter_id: bytes, fields: Mapping[bytes, bytes]) -> DeadLetter:
    index = fields.get(b"index")
    return DeadLetter(
        id=letter_id.decode(),
        entry=fields.get(b"entry", b"").decode(),
        index=int(index) if index else None,
        message_id=fields.get(b"messageId", b"").decode(),
        error=fields.get(b"error", b"").decode(errors="replace"),
        batch=msgspec.json.decode(fields[b"b"]),
    )


def _all() -> Iterator[DeadLetter]:
    start = "-"
    while page := _range(start, count=PAGE):
        for letter_id, fields in page:
            yield _decoded(letter_id, fields)
        start = "(" + page[-1][0].decode()


def entry_set_aside(
    *, entry_id: str, batch: Mapping[str, Any], poison: Sequence[tuple[int, Mapping[str, Any], BaseException]]
) -> None:
    """Add a dead letter for each failed event of a stream entry, unless one is there already
    (the same entry processed again after a crash)."""
    there = {letter.index for letter in _all() if letter.entry == entry_id}
    pipe = client().pipeline(transaction=True)
    for index, event, error in poison:
        if index in there:
            continue
        fields = {
            "b": msgspec.json.encode(event_batch(batch, index)),
            "entry": entry_id,
            "index": str(index),
            "messageId": str(event.get("messageId") or ""),
            "error": repr(error)[:2000],
        }
        pipe.xadd(DEAD_LETTERS, fields)  # type: ignore[arg-type]
    pipe.execute()


def entry_set_aside_whole(*, entry_id: str, batch: Mapping[str, Any], error: BaseException) -> None:
    """Add a dead letter of a whole entry whose batch itself cannot be processed (not one of its
    events: its counts, its time), unless there is one already."""
    if not any(letter.entry == entry_id for letter in _all()):
        fields = {"b": msgspec.json.encode(batch), "entry": entry_id, "messageId": "", "error": repr(error)[:2000]}
        client().xadd(DEAD_LETTERS, fields)  # type: ignore[arg-type]


def profile_keys(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The live profiles these events may have touched: their ids', and the users their
    anonymous ids are linked to."""
    anonymous_ids = {str(e[field]) for e in events for field in ("anonymousId", "previousId") if e.get(field)}
    keys = {f"a:{anonymous_id}" for anonymous_id in anonymous_ids}
    keys |= {f"u:{user_id}" for user_id in linked_users(anonymous_ids).values()}
    keys |= {f"u:{e['userId']}" for e in events if e.get("userId")}
    return sorted(keys)


# --- reading and acting on them (manage.py dead_letters, /healthz, the admin) -----------------


def dead_letters_count(redis_client: redis.Redis | None = None) -> int:
    """How many dead letters wait (0 without Redis: there is no stream); ``redis_client``: read
    with this one (``/healthz``'s, with its short timeouts) rather than the stream's."""
    if not settings.REDIS_URL:
        return 0
    return int((redis_client or client()).xlen(DEAD_LETTERS))


def dead_letters_list(*, count: int = 100) -> list[DeadLetter]:
    """The oldest ``count`` dead letters."""
    return [_decoded(letter_id, fields) for letter_id, fields in _range(count=count)]


def dead_letter_get(letter_id: str) -> DeadLetter | None:
    found = _range(letter_id, letter_id, count=1)
    return _decoded(*found[0]) if found else None


def dead_letters_redrive(*, letter_ids: Sequence[str] | None = None) -> int:
    """Send dead letters (these, or every one if None) back to the event stream; how many went."""
    redriven = 0
    for letter in _chosen(letter_ids):
        pipe = client().pipeline(transaction=True)
        pipe.xadd(STREAM, {"b": msgspec.json.encode(letter.batch)})
        pipe.xdel(DEAD_LETTERS, letter.id)
        pipe.execute()
        redriven += 1
    return redriven


def dead_letters_discard(*, letter_ids: Sequence[str] | None = None) -> int:
    """Delete dead letters (these, or every one if None); how many went."""
    ids = [letter.id for letter in _chosen(letter_ids)]
    return int(client().xdel(DEAD_LETTERS, *ids)) if ids else 0


def _chosen(letter_ids: Sequence[str] | None) -> list[DeadLetter]:
    if letter_ids is None:
        return list(_all())
    return [letter for letter_id in letter_ids if (letter := dead_letter_get(letter_id)) is not None]


# --- personal data (registered in tracking.apps) ----------------------------------------------


def _names(event: Mapping[str, Any], identities: Identities) -> bool:
    return str(event.get("userId") or "") in identities.user_ids or any(
        str(event.get(field) or "") in identities.anonymous_ids for field in ("anonymousId", "previousId")
    )


def subject_export(identities: Identities) -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"dead letters": []}
    events = [event for letter in _all() for event in letter.batch.get("events") or [] if _names(event, identities)]
    return {"dead letters": events}


def subject_erase(identities: Identities) -> dict[str, int]:
    """Delete every dead letter naming the person; a dead letter of a whole batch that also holds
    other people's events is written again without theirs."""
    deleted = 0
    if settings.REDIS_URL:
        for letter in _all():
            events = letter.batch.get("events") or []
            kept = [event for event in events if not _names(event, identities)]
            if len(kept) == len(events):
                continue
            pipe = client().pipeline(transaction=True)
            if kept:
                fields = {"b": msgspec.json.encode({**letter.batch, "events": kept}), "entry": letter.entry,
                          "messageId": "", "error": letter.error}  # fmt: skip
                pipe.xadd(DEAD_LETTERS, fields)  # type: ignore[arg-type]
            pipe.xdel(DEAD_LETTERS, letter.id)
            pipe.execute()
            deleted += len(events) - len(kept)
    return {"dead-lettered events deleted": deleted}
