"""Rows of the public data sets as Segment events, to replay them through ingestion (pure: no Django).

A replay sends these events to ``tracking.ingestion.events_ingest``, the collector's own path, so
they are validated, gated on consent and processed like live ones. The converters decide nothing
about validity: a row the schema would refuse becomes an event that ingestion rejects and reports.

- UCI Online Retail, read by ``personalization.online_retail`` (its rules: non-product codes,
  zero prices, ... are skipped, stock codes upper-cased, times in UTC). Each invoice becomes one
  ``Product Added`` per line, in line order, then one ``Order Completed`` (``order_id`` = the
  invoice number, as the loader stores it); a cancellation invoice (``C…``) becomes one
  ``Order Cancelled`` with the lines given back. ``userId`` is the CustomerID; a guest checkout
  gets the anonymous id ``uci-guest-<InvoiceNo>``.
- REES46 (``view``, ``cart``, ``purchase`` rows): ``Product Viewed``, ``Product Added``, or an
  ``Order Completed`` of the one product (``order_id`` = ``rees46-<user_session>-<row>``), from
  the anonymous visitor ``rees46-<user_id>``; the data set's session is kept in
  ``context.pz.dataset_session``. Its prices carry no currency, so none is sent.

Events have no ``sentAt``, so their ``timestamp`` is taken as it is (a historical import), and
deterministic message ids (``uci-<InvoiceNo>-<line>-added``, ``uci-<InvoiceNo>-order``,
``rees46-<row>-<event_type>``), so a second replay stores nothing new: every event is a duplicate.
Row numbers count data rows from 1: a different file of the same data set needs its own source.
"""

import csv
import gzip
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from personalization.online_retail import RetailInvoice
from tracking.event_schema import MAX_EVENT_BYTES

Event = dict[str, Any]
T = TypeVar("T")

UCI_CURRENCY = "GBP"
REES46_COLUMNS = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
REES46_EVENTS = {
    "view": "Product Viewed",
    "cart": "Product Added",
    "remove_from_cart": "Product Removed",  # in REES46's other shop's files
    "purchase": "Order Completed",
}


class ReplayError(Exception):
    """The file is not the data set it was given as."""


# --- UCI Online Retail -------------------------------------------------------------------------


def invoice_events(invoice: RetailInvoice) -> list[Event]:
    """The events of one invoice, as read by ``personalization.online_retail.read_online_retail``."""
    who: Event = (
        {"userId": invoice.customer_id} if invoice.customer_id else {"anonymousId": f"uci-guest-{invoice.invoice_no}"}
    )
    when = invoice.placed_at.isoformat()
    products = [
        {"product_id": line.sku, "name": line.name, "price": float(line.unit_price), "quantity": line.quantity}
        for line in invoice.lines
    ]
    events: list[Event] = []
    if not invoice.cancelled:
        events += [
            {
                "type": "track",
                "event": "Product Added",
                "messageId": f"uci-{invoice.invoice_no}-{number}-added",
                **who,
                "timestamp": when,
                "properties": {**product, "currency": UCI_CURRENCY},
            }
            for number, product in enumerate(products, start=1)
        ]
    revenue = sum((line.unit_price * line.quantity for line in invoice.lines), Decimal("0"))
    order: Event = {
        "type": "track",
        "event": "Order Cancelled" if invoice.cancelled else "Order Completed",
        "messageId": f"uci-{invoice.invoice_no}-order",
        **who,
        "timestamp": when,
        "properties": {
            "order_id": invoice.invoice_no,
            "products": products,
            "revenue": float(revenue.quantize(Decimal("0.01"))),
            "currency": UCI_CURRENCY,
            "country": invoice.country,
        },
    }
    if len(msgspec.json.encode(order)) > MAX_EVENT_BYTES:
        # A wholesaler's invoice of several hundred lines: its names are in the catalog, so leave them
        # out rather than lose the order to the 32 KB limit of an event (a few of the largest still are).
        order["properties"]["products"] = [{k: v for k, v in p.items() if k != "name"} for p in products]
    events.append(order)
    return events


# --- REES46 ------------------------------------------------------------------------------------


def rees46_time(raw: str) -> datetime | None:
    """``2019-10-01 00:00:04 UTC`` → an aware datetime in UTC; ``None`` if it is not a time."""
    try:
        return datetime.fromisoformat(raw.strip().removesuffix(" UTC")).replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(raw: str) -> float | str:
    """A price as a number; anything else is sent as it is, for validation to refuse and report."""
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw  # JSON has no NaN: it would arrive as null


def rees46_event(row: Mapping[str, str], number: int) -> Event | None:
    """The event of data row ``number`` (counted from 1); ``None`` for an event type with no
    Segment equivalent."""
    name = REES46_EVENTS.get(row["event_type"])
    if name is None:
        return None
    product: Event = {"product_id": row["product_id"], "price": _number(row["price"]), "quantity": 1}
    if row["brand"]:
        product["brand"] = row["brand"]
    if row["category_code"]:
        product["category"] = row["category_code"]
    if name == "Order Completed":
        properties = {
            "order_id": f"rees46-{row['user_session']}-{number}",
            "products": [product],
            "revenue": product["price"],
        }
    else:
        properties = product
    when = rees46_time(row["event_time"])
    event: Event = {
        "type": "track",
        "event": name,
        "messageId": f"rees46-{number}-{row['event_type']}",
        "timestamp": when.isoformat() if when is not None else row["event_time"],  # validation refuses junk
        "properties": properties,
    }
    if row["user_id"]:
        event["anonymousId"] = f"rees46-{row['user_id']}"
    if row["user_session"]:
        event["context"] = {"pz": {"dataset_session": row["user_session"]}}
    return event


@dataclass
class RowCounts:
    """What became of the rows of a file, for the summary."""

    read: int = 0
    outside_window: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def read_rees46(
    path: Path, *, counts: RowCounts, since: date | None = None, until: date | None = None
) -> Iterator[list[Event]]:
    """The events of a REES46 file, one list per row, in file order. ``since`` (inclusive) and
    ``until`` (exclusive) select rows by their UTC date."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != REES46_COLUMNS:
            raise ReplayError(f"{path}: expected the columns {', '.join(REES46_COLUMNS)}; found {header}")
        for number, values in enumerate(reader, start=1):
            counts.read += 1
            if len(values) != len(REES46_COLUMNS):
                counts.skipped["malformed row"] += 1
                continue
            row = dict(zip(REES46_COLUMNS, values, strict=True))
            when = rees46_time(row["event_time"])
            day = when.date() if when is not None else None  # no time: validation refuses the event
            if day is not None and ((since is not None and day < since) or (until is not None and day >= until)):
                counts.outside_window += 1
                continue
            event = rees46_event(row, number)
            if event is None:
                counts.skipped[f"event type {row['event_type']!r}"] += 1
                continue
            yield [event]


# --- batches -----------------------------------------------------------------------------------


def batches(groups: Iterable[list[T]], *, size: int, limit: int | None = None) -> Iterator[list[T]]:
    """Batches of about ``size`` events that never split a group (an invoice): its add-to-carts and
    its order are processed together, even by several consumers. A group larger than ``size`` goes
    alone. ``limit`` stops before the first group that would take the total over it."""
    batch: list[T] = []
    sent = 0
    for group in groups:
        if limit is not None and sent + len(group) > limit:
            break
        if batch and len(batch) + len(group) > size:
            yield batch
            batch = []
        batch += group
        sent += len(group)
    if batch:
        yield batch
