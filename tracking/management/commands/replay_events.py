"""``python manage.py replay_events DATASET PATH``: send a real data set through the collector's path.

Batches of Segment events go to ``tracking.ingestion.events_ingest``, exactly as the collector
sends a request's events: validated, gated on consent, then stored and processed (sessions,
profiles, orders) once; with the Redis Stream, this command also consumes what it appended.
How rows become events is in ``tracking.replay``. Running it twice stores nothing new.
"""

import argparse
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Sum
from django.utils import timezone
from tqdm import tqdm

from config.arguments import iso_date
from consent.services import consent_bulk_import
from consent.subjects import InvalidSubject, Subject
from personalization.online_retail import OnlineRetailError, read_online_retail
from tracking.consumer import consume_available
from tracking.event_schema import MAX_BATCH_EVENTS
from tracking.ingestion import events_ingest
from tracking.models import IngestCount, Order, Source
from tracking.replay import Event, ReplayError, RowCounts, batches, invoice_events, read_rees46
from tracking.services import source_create

DATASETS = {
    "online-retail": "online_retail/online_retail.csv.gz",
    "rees46": "rees46_oct2019_head/events.csv.gz",
}
PROCESS_EVERY = 10  # with the stream: consume what was appended every this many batches


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    granted: int = 0
    already_chosen: int = 0
    suppressed: int = 0
    batches: int = 0
    people: set[Subject] = field(default_factory=set)  # subjects already seen in this run


class Command(BaseCommand):
    help = (
        "Replay a public data set (online-retail: UCI Online Retail; rees46: the REES46 clickstream head) "
        "through the collector's ingestion: validation, consent, processing. Events keep their historical "
        "timestamps and have deterministic message ids, so a second run stores nothing new. "
        "Consent: analytics is opt-in, and the data set's people never chose. With --consent-basis import "
        "(the default) the command records, for each person who has made no choice, an analytics grant "
        "with source 'import' before sending their first event: by running it you assert that the data "
        "was collected with their consent. It never overrides a withdrawal or lifts an erasure. With "
        "--consent-basis none nothing is granted, and every event of people without consent is dropped "
        "(no_consent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", choices=sorted(DATASETS), help="Which data set the file is.")
        parser.add_argument(
            "path",
            type=Path,
            help="The file (CSV, optionally gzipped); in ../shared/datasets/: "
            + ", ".join(f"{name}: {where}" for name, where in DATASETS.items()),
        )
        parser.add_argument("--source", default="Replay", help="Source to send as (created if missing).")
        parser.add_argument("--since", type=iso_date, help="First day to replay (inclusive, YYYY-MM-DD).")
        parser.add_argument("--until", type=iso_date, help="Day to stop before (exclusive, YYYY-MM-DD).")
        parser.add_argument(
            "--limit", type=_positive, help="Send at most this many events (an invoice is never cut in two)."
        )
        parser.add_argument(
            "--batch-size",
            type=_positive,
            default=500,
            help=f"Events per ingestion call, like one collector request (at most {MAX_BATCH_EVENTS:,}).",
        )
        parser.add_argument(
            "--consent-basis",
            choices=["import", "none"],
            default="import",
            help="import: record an analytics grant (source import) for each person without a choice, "
            "asserting the data was collected with consent; none: grant nothing (events are dropped).",
        )
        parser.add_argument(
            "--no-process",
            action="store_true",
            help="With the Redis Stream: only append; leave processing to consume_events.",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist. The data sets live in {settings.PZ_DATASETS_DIR}.")
        if options["since"] and options["until"] and options["since"] >= options["until"]:
            raise CommandError("--since must be before --until.")
        if options["batch_size"] > MAX_BATCH_EVENTS:
            raise CommandError(f"--batch-size is at most {MAX_BATCH_EVENTS:,}, the collector's limit for a batch.")
        source_name = options["source"].strip()
        if not source_name:
            raise CommandError("--source cannot be empty.")
        streaming = bool(settings.REDIS_URL) and not settings.PZ_PROCESS_EVENTS_IN_PROCESS
        if options["no_process"] and not streaming:
            raise CommandError("--no-process needs the Redis Stream (REDIS_URL): without it events are processed now.")
        show = not options["no_progress"]
        started = time.monotonic()

        rows = RowCounts()
        groups, total = self._groups(options["dataset"], path, options, rows, show)
        source = self._source(source_name)
        if options["limit"] is not None and total is not None:
            total = min(total, options["limit"])
        counts_before, orders_before = self._ingest_counts(source), Order.objects.count()
        consumer = f"replay-{socket.gethostname()}-{os.getpid()}"
        tally = Tally()
        with tqdm(total=total, desc="Replaying events", unit=" events", disable=not show) as bar:
            for batch in batches(groups, size=options["batch_size"], limit=options["limit"]):
                self._send(batch, source, options["consent_basis"], tally)
                if streaming and not options["no_process"] and tally.batches % PROCESS_EVERY == 0:
                    self._process(consumer)
                bar.update(len(batch))
                bar.set_postfix(accepted=tally.accepted, dropped=sum(tally.dropped.values()), refresh=False)
        if streaming and not options["no_process"]:
            self._process(consumer)

        counts = self._ingest_counts(source)
        processed = None if options["no_process"] else {k: counts.get(k, 0) - counts_before.get(k, 0) for k in counts}
        orders = Order.objects.count() - orders_before
        self._report(options["dataset"], source, rows, tally, processed, orders, time.monotonic() - started)

    # --- steps -----------------------------------------------------------------------------------

    def _source(self, name: str) -> Source:
        source = Source.objects.filter(name=name).first() or source_create(name=name).source
        if not source.is_active:
            raise CommandError(f"The source {name!r} is not active: the collector refuses its events.")
        return source

    def _groups(
        self, dataset: str, path: Path, options: dict[str, Any], rows: RowCounts, show: bool
    ) -> tuple[Iterable[list[Event]], int | None]:
        """The events to send, in lists never split across batches, and how many (if known)."""
        since, until = options["since"], options["until"]
        if dataset == "rees46":
            return self._rees46(path, rows, since, until), None
        with tqdm(desc="Reading rows", unit=" rows", disable=not show) as bar:
            try:
                data = read_online_retail(path, since=since, until=until, on_row=bar.update)
            except (OnlineRetailError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
        rows.read, rows.outside_window, rows.skipped = data.rows_read, data.rows_outside_window, data.skipped
        total = sum(1 if invoice.cancelled else len(invoice.lines) + 1 for invoice in data.invoices)
        return (invoice_events(invoice) for invoice in data.invoices), total

    def _rees46(self, path: Path, rows: RowCounts, since: date | None, until: date | None) -> Iterator[list[Event]]:
        try:
            yield from read_rees46(path, counts=rows, since=since, until=until)
        except ReplayError as exc:
            raise CommandError(str(exc)) from exc

    def _send(self, batch: list[Event], source: Source, consent_basis: str, tally: Tally) -> None:
        tally.batches += 1
        new = [subject for subject in _subjects(batch) if subject not in tally.people]
        tally.people.update(new)
        if consent_basis == "import" and new:
            granted = consent_bulk_import(subjects=new, purpose="analytics")
            tally.granted += granted.recorded
            tally.already_chosen += granted.already_chosen
            tally.suppressed += granted.suppressed
        tally.sent.update(str(event.get("event") or event.get("type")) for event in batch)
        try:
            # An operator's data set: its user ids are the shop's own.
            result = events_ingest(
                source_id=source.pk, raw_events=batch, meta={}, received_at=timezone.now(), user_ids_trusted=True
            )
        except redis.RedisError as exc:
            raise CommandError(
                f"The event stream is unavailable ({exc}) after {tally.batches - 1:,} batches. "
                "Run the command again: what was stored is skipped as duplicates."
            ) from exc
        tally.accepted += result.accepted
        tally.rejected.update((rejection.field, rejection.reason) for rejection in result.rejected)
        tally.dropped.update(result.dropped)

    def _process(self, consumer: str) -> None:
        try:
            consume_available(name=consumer)
        except Exception as exc:
            raise CommandError(
                f"Processing the stream failed ({exc}). Its entries stay pending: consume_events takes them over."
            ) from exc

    def _ingest_counts(self, source: Source) -> dict[str, int]:
        """What processing counted for the source so far, by outcome (every day together)."""
        rows = IngestCount.objects.filter(source=source).values_list("outcome").annotate(total=Sum("count"))
        return {outcome: int(total) for outcome, total in rows}

    # --- summary ---------------------------------------------------------------------------------

    def _report(
        self,
        dataset: str,
        source: Source,
        rows: RowCounts,
        tally: Tally,
        processed: dict[str, int] | None,
        orders: int,
        seconds: float,
    ) -> None:
        write = self.stdout.write
        write(f"Rows read: {rows.read:,} ({dataset})")
        for reason, count in rows.skipped.most_common():
            write(f"  skipped, {reason.replace('_', ' ')}: {count:,}")
        if rows.outside_window:
            write(f"  outside --since/--until: {rows.outside_window:,}")
        sent = sum(tally.sent.values())
        names = "; ".join(f"{name}: {count:,}" for name, count in tally.sent.most_common())
        write(f"Events read: {sent:,}" + (f" ({names})" if names else "") + f", sent to source {source.name!r}")
        if tally.granted or tally.already_chosen or tally.suppressed:
            write(
                f"Consent (analytics, source import): {tally.granted:,} granted now, {tally.already_chosen:,} "
                f"had chosen already (left as they chose), {tally.suppressed:,} erased (left suppressed)"
            )
        write(f"Accepted: {tally.accepted:,}")
        write(f"Rejected: {sum(tally.rejected.values()):,}")
        for (field_name, reason), count in tally.rejected.most_common():
            write(f"  {field_name}: {reason}: {count:,}")
        write(f"Dropped: {sum(tally.dropped.values()):,}")
        for outcome, count in tally.dropped.most_common():
            write(f"  {outcome}: {count:,}")
        if processed is None:
            appended = f"{tally.batches:,} batch{'es' if tally.batches != 1 else ''}"
            write(f"Stored: not yet ({appended} appended to the event stream, for consume_events)")
        else:
            write(f"Stored: {processed.get(IngestCount.Outcome.STORED, 0):,}")
            write(f"Duplicates (already stored): {processed.get(IngestCount.Outcome.DUPLICATE, 0):,}")
            write(f"Orders recorded: {orders:,}")
        rate = f" ({sent / seconds:,.0f} events/s)" if seconds > 0 and sent else ""
        write(self.style.SUCCESS(f"Done in {seconds:.1f} s{rate}."))


def _subjects(batch: list[Event]) -> list[Subject]:
    """The people of a batch (those ingestion would refuse are left to it)."""
    subjects = []
    for event in batch:
        try:
            subjects.append(
                Subject(user_id=str(event.get("userId") or ""), anonymous_id=str(event.get("anonymousId") or ""))
            )
        except InvalidSubject:
            continue
    return list(dict.fromkeys(subjects))
