"""``python manage.py consume_events``: process the event stream (run as many as you like)."""

import gc
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.redis_persistence import redis_persistence_refused
from config.stopping import stop_on_signal
from config.store_outages import Outage, retried
from tracking import stream
from tracking.consumer import ConsumerStats, consume, log


class Command(BaseCommand):
    help = "Read events from the Redis Stream, store them, update profiles (one consumer of the group)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", help="Consumer name; keep it across restarts to resume its own pending entries.")
        parser.add_argument(
            "--count",
            type=int,
            default=100,
            help="Stream entries (request batches) per micro-batch (transaction).",
        )
        parser.add_argument("--block-ms", type=int, default=100, help="How long to wait for new entries.")
        parser.add_argument(
            "--linger-ms",
            type=int,
            default=20,
            help="When fewer than --count entries are waiting, wait this long for more before processing them "
            "(fewer, larger transactions under a light load; 0: process at once).",
        )
        parser.add_argument("--claim-idle-ms", type=int, default=30_000, help="Claim entries idle this long.")
        parser.add_argument(
            "--exit-when-idle", action="store_true", help="Stop once the stream is empty (for replays)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: without Redis the collector processes events itself.")
        name = options["name"] or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        _tune_garbage_collector()
        stopping = stop_on_signal()
        refused = retried(
            lambda: redis_persistence_refused(stream.client(), process=f"Consumer {name}"),
            outage=Outage(log, f"Consumer {name}"),
            stop=stopping,
        )
        if refused:
            raise CommandError(f"Not starting: {refused}")
        stats = ConsumerStats()
        started = time.monotonic()
        idle_since = [time.monotonic()]
        last_entries = [0]

        def stop() -> bool:
            if stats.entries != last_entries[0]:
                last_entries[0], idle_since[0] = stats.entries, time.monotonic()
            idle = options["exit_when_idle"] and time.monotonic() - idle_since[0] > 2
            return stopping() or bool(idle)

        self.stdout.write(f"Consumer {name} reading the event stream (Ctrl-C stops after the current batch).")
        consume(
            name=name,
            count=options["count"],
            block_ms=options["block_ms"],
            claim_idle_ms=options["claim_idle_ms"],
            linger_ms=options["linger_ms"],
            stop=stop,
            stats=stats,
        )
        seconds = time.monotonic() - started
        self.stdout.write(
            f"Stopped: {stats.stored:,} events stored, {stats.duplicates:,} duplicates, {stats.entries:,} entries, "
            f"{stats.failures} failures in {seconds:.1f} s."
        )


def _tune_garbage_collector() -> None:
    """Collect cycles every 50,000 allocations instead of 700. A micro-batch allocates hundreds of
    thousands of short-lived objects (decoded events, rows, JSON), nearly none in cycles, and with
    the default each batch triggered full collections that walked every live object: about a third
    of the consumer's Python time. What Django loaded at start-up is frozen out of the collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
