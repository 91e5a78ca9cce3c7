"""The stream consumer: read micro-batches, process them, acknowledge. Any number may run.

Exactly-once effect: ``batches_process`` stores events and their profile changes in one
transaction and skips what is already stored, and an entry is acknowledged only after that
transaction commits. Killed before the commit: nothing happened, the entry is still pending and is
processed again (by this name on restart, or claimed by another consumer). Killed after the
commit but before the acknowledgement: processed again, it finds its events stored and changes
nothing.

Failures are of two kinds. A store that cannot be reached (``config.store_outages``) is nobody's
fault: the consumer waits for it and tries the same entries again, for as long as it takes, and
sets nothing aside. Any other failure of an entry processed alone is its content's: its events
are then processed one at a time (``_set_aside_poison``), and only an event that fails on its own
goes to the dead-letter stream (``tracking.dead_letters``); the rest of its entry is stored.
"""

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from config.store_outages import Outage, is_store_error
from tracking import dead_letters, live_mirror, stream
from tracking.processing import batches_process

log = logging.getLogger(__name__)

FAULT = os.environ.get("PZ_CONSUMER_FAULT", "")  # tests only: "before_commit" or "after_commit"


@dataclass
class ConsumerStats:
    entries: int = 0
    stored: int = 0
    duplicates: int = 0
    failures: int = 0
    transactions: int = 0
    dead_lettered: int = 0


def _crash_if(point: str) -> None:
    if point == FAULT:
        os.kill(os.getpid(), signal.SIGKILL)


def _process(entries: list[stream.Entry], stats: ConsumerStats) -> None:
    with transaction.atomic():
        result = batches_process([batch for _, batch in entries])
        _crash_if("before_commit")
    _crash_if("after_commit")
    stream.acknowledge([entry_id for entry_id, _ in entries])
    stats.entries += len(entries)
    stats.transactions += 1
    stats.stored += result.stored
    stats.duplicates += result.duplicates


def _process_one_by_one(entries: list[stream.Entry], stats: ConsumerStats) -> None:
    """After a micro-batch failed: find the entry at fault, so the others go through. An outage
    is raised on, to be waited out with the same entries."""
    for entry_id, batch in entries:
        try:
            _process([(entry_id, batch)], stats)
        except Exception as exc:
            if is_store_error(exc):
                raise
            stats.failures += 1
            log.warning("Entry %s failed (%r); processing its events one at a time", entry_id, exc)
            try:
                _set_aside_poison(entry_id, batch, stats)
            except Exception as batch_error:
                if is_store_error(batch_error):
                    raise
                log.error("Entry %s set aside whole in %s: %r", entry_id, stream.DEAD_LETTERS, batch_error)
                dead_letters.entry_set_aside_whole(entry_id=entry_id, batch=batch, error=batch_error)
                stream.acknowledge([entry_id])
                stats.dead_lettered += 1


def _set_aside_poison(entry_id: str, batch: Mapping[str, Any], stats: ConsumerStats) -> None:
    """Store an entry's events one at a time, each under a savepoint, and set aside in the
    dead-letter stream only those that fail alone.

    In one transaction: the entry's batch id is marked processed (with its dropped and rejected
    counts), as if it had gone through whole, so that a redelivery skips it; each event goes as a
    batch of its own (``<batch id>/<index>``, which a redrive of it reuses). The dead letters are
    written before the commit: killed in between, the entry is processed again and finds its dead
    letters already there (``dead_letters.entry_set_aside``)."""
    poison: list[tuple[int, Mapping[str, Any], BaseException]] = []
    with transaction.atomic():
        batches_process([{**batch, "events": []}])
        for index, event in enumerate(batch["events"]):
            try:
                with transaction.atomic():
                    result = batches_process([dead_letters.event_batch(batch, index)])
            except Exception as exc:
                if is_store_error(exc):
                    raise
                poison.append((index, event, exc))
                continue
            stats.stored += result.stored
            stats.duplicates += result.duplicates
        if poison:
            dead_letters.entry_set_aside(entry_id=entry_id, batch=batch, poison=poison)
        _crash_if("before_commit")
    stream.acknowledge([entry_id])
    stats.entries += 1
    stats.transactions += 1
    stats.dead_lettered += len(poison)
    for index, event, error in poison:
        log.error("Entry %s: event %s (%s) set aside in %s: %r", entry_id, index, event.get("messageId"),
                  stream.DEAD_LETTERS, error)  # fmt: skip
    if poison:
        # A failed event's savepoint may have written the mirror before it was rolled back: its
        # profiles are read again from the database, which now holds the rest of the entry.
        live_mirror.mirror_forget(dead_letters.profile_keys([event for _, event, _ in poison]))


def consume(
    *,
    name: str,
    count: int = 100,
    block_ms: int = 100,
    claim_idle_ms: int = 30_000,
    linger_ms: int = 0,
    stop: Callable[[], bool] = lambda: False,
    stats: ConsumerStats | None = None,
) -> ConsumerStats:
    """Run until ``stop()``: first this name's own pending entries (a restart), then new ones,
    claiming every few seconds the entries other consumers left idle for ``claim_idle_ms``.

    ``linger_ms``: when fewer than ``count`` new entries are waiting, wait this long for more
    before processing them. A transaction has fixed costs (locks, the profiles' read and write,
    the commit, the mirror): a trickle of entries processed one or two at a time costs several
    times more CPU per event than the same entries taken together.

    While Redis or the database is down it waits (``config.store_outages.Outage``), then reads its own
    pending entries again: what it had read and not acknowledged is processed, and only then
    new ones."""
    stats = stats or ConsumerStats()
    outage = Outage(log, f"Consumer {name}")
    has_group = False
    recovering = True
    next_claim = time.monotonic()
    while not stop():
        try:
            if not has_group:
                stream.ensure_group()  # at start, and after an outage: a Redis without its data lost it
                has_group = True
            if recovering:
                entries = stream.read_own_pending(name, count=count)
                recovering = bool(entries)
            elif time.monotonic() >= next_claim:
                entries = stream.claim_stale(name, idle_ms=claim_idle_ms, count=count)
                next_claim = time.monotonic() + 5
            else:
                entries = stream.read_new(name, count=count, block_ms=block_ms)
                if entries and len(entries) < count and linger_ms:
                    time.sleep(linger_ms / 1000)
                    entries += stream.read_new(name, count=count - len(entries), block_ms=None)
            if entries:
                _process_entries(entries, stats)
        except Exception as exc:
            if not is_store_error(exc):
                raise
            has_group, recovering = False, True
            outage.wait(exc, stop=stop)
            continue
        outage.over()
    return stats


def _process_entries(entries: list[stream.Entry], stats: ConsumerStats) -> None:
    try:
        _process(entries, stats)
    except Exception as exc:
        if is_store_error(exc):
            raise
        log.warning("A batch of %s entries failed (%r); retrying them one by one", len(entries), exc)
        _process_one_by_one(entries, stats)


def consume_available(*, name: str, count: int = 50) -> ConsumerStats:
    """Process what is in the stream now, then return (replays, and tests that drain the stream)."""
    stats = ConsumerStats()
    stream.ensure_group()
    while entries := stream.read_own_pending(name, count=count) or stream.read_new(name, count=count, block_ms=1):
        _process_entries(entries, stats)
    return stats
