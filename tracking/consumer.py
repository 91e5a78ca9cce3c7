"""The stream consumer: read micro-batches, process them, acknowledge. Any number may run.

Exactly-once effect: ``batches_process`` stores events and their profile changes in one
transaction and skips what is already stored, and an entry is acknowledged only after that
transaction commits. Killed before the commit: nothing happened, the entry is still pending and is
processed again (by this name on restart, or claimed by another consumer). Killed after the
commit but before the acknowledgement: processed again, it finds its events stored and changes
nothing.
"""

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections, transaction

from tracking import stream
from tracking.processing import batches_process

log = logging.getLogger(__name__)

MAX_DELIVERIES = 5  # an entry failing this many times goes to the dead-letter stream
FAULT = os.environ.get("PZ_CONSUMER_FAULT", "")  # tests only: "before_commit" or "after_commit"


@dataclass
class ConsumerStats:
    entries: int = 0
    stored: int = 0
    duplicates: int = 0
    failures: int = 0
    transactions: int = 0


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
    """After a batch failed: find the entry at fault, so the others go through."""
    for entry_id, batch in entries:
        try:
            _process([(entry_id, batch)], stats)
        except Exception as exc:
            stats.failures += 1
            close_old_connections()
            if stream.deliveries(entry_id) >= MAX_DELIVERIES:
                log.error(
                    "Entry %s failed %s times; moved to %s: %s", entry_id, MAX_DELIVERIES, stream.DEAD_LETTERS, exc
                )
                stream.dead_letter(entry_id, batch, repr(exc))
            else:
                log.warning("Entry %s failed, will be retried: %s", entry_id, exc)


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
    times more CPU per event than the same entries taken together."""
    stats = stats or ConsumerStats()
    stream.ensure_group()
    recovering = True
    next_claim = time.monotonic()
    while not stop():
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
        if not entries:
            continue
        try:
            _process(entries, stats)
        except Exception as exc:
            log.warning("A batch of %s entries failed (%s); retrying them one by one", len(entries), exc)
            close_old_connections()
            _process_one_by_one(entries, stats)
    return stats


def consume_available(*, name: str, count: int = 50) -> ConsumerStats:
    """Process what is in the stream now, then return (replays, and tests that drain the stream)."""
    stats = ConsumerStats()
    stream.ensure_group()
    while entries := stream.read_own_pending(name, count=count) or stream.read_new(name, count=count, block_ms=1):
        _process(entries, stats)
    return stats
