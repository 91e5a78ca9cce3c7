"""The platform's own events (the recommendation API's exposures), appended to the stream in batches
by a thread of the process, off the requests' path.

On two cores, a blocking round trip through redis-py costs a threaded worker 150-300 µs of CPU
(bench/serve.py's floor case), and each answer's exposure used to make one. So, with the stream, a
request leaves its event in this process's buffer, and a thread appends what has gathered every
``PZ_INTERNAL_EVENTS_FLUSH_MS`` (50), sooner when ``FLUSH_AT`` are waiting. Returning customers
were answered at 970 req/s flat out instead of 750 (medians of four alternated runs); every 5 ms
gathered too few to gain anything. The events go through the collector's path
(``events_ingest``): the same validation, and the same analytics consent gate, decided and
appended in one atomic step. Each event carries its request's address and user agent, and the
time it was sent, so batching changes nothing of what is stored.

The trade: an event reaches the stream up to ``PZ_INTERNAL_EVENTS_FLUSH_MS`` after its answer,
and the events still in the buffer when a process is killed are lost (one that exits, a granian
worker included, flushes them). If Redis or the database cannot be reached, they are kept and
tried again after a pause growing to 5 s (the outage logged once as it starts and once as it
ends), up to ``MAX_WAITING``; beyond that the oldest are dropped, and logged. Without the
stream (the embedded configuration, or ``PZ_PROCESS_EVENTS_IN_PROCESS``) each event is processed
at once, in the request, as before.
"""

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from django.conf import settings
from django.db import close_old_connections

from config.store_outages import Outage, is_store_error
from consent.network import request_facts
from tracking.ingestion import events_ingest, streaming

logger = logging.getLogger(__name__)

FLUSH_AT = 100  # events waiting that wake the thread before its period is up
MAX_WAITING = 50_000  # kept while the stream cannot be reached (~50 MB of exposures)
RETRY_SECONDS = 1.0


class _Buffer:
    """This process's waiting events (by source) and the thread that appends them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """As new (in a forked child too: the parent's thread, locks and events are not its own)."""
        self.waiting: deque[tuple[int, msgspec.Raw]] = deque()
        self.wake = threading.Event()
        self.flushing = threading.Lock()
        self.starting = threading.Lock()
        self.thread: threading.Thread | None = None
        self.dropped = 0
        self.outage: BaseException | None = None  # why the last flush failed, when a store was down

    def started(self) -> None:
        if self.thread is not None:
            return
        with self.starting:
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="pz-internal-events", daemon=True)
                self.thread.start()
                # At exit, besides atexit: a worker that multiprocessing started (granian's) leaves
                # through os._exit, which skips atexit, and runs the finalizers registered in it.
                multiprocessing.util.Finalize(None, internal_events_flush, exitpriority=10)

    def run(self) -> None:
        period = settings.PZ_INTERNAL_EVENTS_FLUSH_MS / 1000
        outage = Outage(logger, "The platform's own events")
        while True:
            self.wake.wait(period)
            self.wake.clear()
            try:
                appended = self.flush()
            except Exception:  # the thread must outlive anything; what waits is tried again
                logger.exception("the platform's own events: the flush failed")
                appended = False
            finally:
                close_old_connections()  # the consent gate may read people it has no state of
            if appended:
                outage.over()
            elif self.outage is not None:  # kept, and tried again once the store may be back
                outage.wait(self.outage)
            else:
                time.sleep(RETRY_SECONDS)

    def flush(self) -> bool:
        """Append everything waiting now; False (with the events kept) if the stream failed."""
        with self.flushing:
            while self.waiting:
                by_source: dict[int, list[msgspec.Raw]] = {}
                for _ in range(min(len(self.waiting), FLUSH_AT)):
                    source_id, raw = self.waiting.popleft()
                    by_source.setdefault(source_id, []).append(raw)
                for source_id in list(by_source):
                    try:
                        events_ingest(
                            source_id=source_id,
                            raw_events=by_source[source_id],
                            meta={},  # each event carries its own request's facts
                            received_at=datetime.now(UTC),
                            internal=True,
                            user_ids_trusted=True,  # the platform's own events, for ids the API has checked
                        )
                    except Exception as exc:
                        self.outage = exc if is_store_error(exc) else None
                        if self.outage is None:
                            logger.exception("the platform's own events could not be appended; trying again")
                        self._keep([(source, raw) for source, raws in by_source.items() for raw in raws])
                        return False
                    del by_source[source_id]
            self.outage = None
            return True

    def _keep(self, events: list[tuple[int, msgspec.Raw]]) -> None:
        """Put events back at the front, to go first; beyond ``MAX_WAITING`` the oldest go."""
        self.waiting.extendleft(reversed(events))
        over = len(self.waiting) - MAX_WAITING
        for _ in range(max(over, 0)):
            self.waiting.popleft()
        if over > 0:
            self.dropped += over
            logger.error("%d of the platform's own events dropped: the stream was unreachable too long", over)


_buffer = _Buffer()


def internal_event_send(*, source_id: int, event: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Ingest the platform's own ``event`` (a Segment event) for the request with ``meta``: with
    the stream, left for this process's thread to append within milliseconds; else at once."""
    if not streaming():
        events_ingest(
            source_id=source_id,
            raw_events=[msgspec.Raw(msgspec.json.encode(event))],
            meta=meta,
            received_at=datetime.now(UTC),
            internal=True,
            user_ids_trusted=True,  # the platform's own events, for ids the API has checked
        )
        return
    # The view's META is a dict already: no copy of it per answer (request_facts reads only dicts).
    facts = request_facts(meta if isinstance(meta, dict) else dict(meta), settings.PZ_TRUSTED_PROXIES)
    # The request's facts, unless the event gives its own (as ``events_ingest`` prefers them).
    context = {"ip": facts["ip_address"], "userAgent": facts["user_agent"], **event.get("context", {})}
    sent = {"timestamp": datetime.now(UTC).isoformat(), **event, "context": context}
    _buffer.started()
    # As JSON, so that it takes the collector's fast path (decoded straight into its checked form).
    _buffer.waiting.append((source_id, msgspec.Raw(msgspec.json.encode(sent))))
    if len(_buffer.waiting) >= FLUSH_AT:
        _buffer.wake.set()


def internal_events_flush() -> bool:
    """Append what this process has waiting now (at exit; and for a test before it drains the
    stream). False if the stream could not be reached (the events are kept)."""
    return _buffer.flush()


def internal_events_dropped() -> int:
    """How many events this process dropped since it started, the stream unreachable too long."""
    return _buffer.dropped


atexit.register(internal_events_flush)
os.register_at_fork(after_in_child=_buffer.reset)
