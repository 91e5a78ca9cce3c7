"""Writes of the tracking app: sources and their keys, customers, orders."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from personalization.selectors import product_ids_by_sku
from tracking.models import Customer, Order, OrderLine, Source
from tracking.selectors import source_cache_key
from tracking.source_keys import SECRET_KEY_PREFIX, WRITE_KEY_PREFIX, secret_key_digest

# --- Sources ---------------------------------------------------------------------------------


def _new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SourceKeys:
    source: Source
    write_key: str
    secret_key: str


def source_create(*, name: str) -> SourceKeys:
    """Create a source. The secret key is returned here once and never stored in clear."""
    secret_key = _new_secret_key()
    source = Source.objects.create(
        name=name,
        write_key=WRITE_KEY_PREFIX + secrets.token_urlsafe(24),
        secret_key_digest=secret_key_digest(secret_key),
        secret_key_prefix=secret_key[:10],
    )
    return SourceKeys(source=source, write_key=source.write_key, secret_key=secret_key)


def source_cache_forget(*, source: Source) -> None:
    """Drop the collector's cached copies of a changed source (its last-known copy too) once the
    change commits: a key revoked in the admin is then refused within the minute, and never
    accepted on a stale copy while PostgreSQL is down."""
    keys = [source_cache_key(lookup) for lookup in (source.write_key, source.secret_key_digest)]
    transaction.on_commit(lambda: cache.delete_many([k + suffix for k in keys for suffix in ("", ":known")]))


def source_rotate_secret_key(*, source: Source) -> str:
    """Replace the secret key; the old one stops working at once (and its cached copies go)."""
    source_cache_forget(source=source)
    secret_key = _new_secret_key()
    source.secret_key_digest = secret_key_digest(secret_key)
    source.secret_key_prefix = secret_key[:10]
    source.save(update_fields=["secret_key_digest", "secret_key_prefix", "updated_at"])
    return secret_key


# --- Customers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerIn:
    user_id: str
    country: str = ""
    first_seen_at: datetime | None = None


@dataclass(frozen=True)
class CustomerUpsertResult:
    created: int
    updated: int
    unchanged: int


@transaction.atomic
def customer_bulk_upsert(*, customers: Sequence[CustomerIn]) -> CustomerUpsertResult:
    """Create customers by ``user_id``; on existing ones set a known country and the earliest first sighting."""
    existing = Customer.objects.in_bulk([c.user_id for c in customers], field_name="user_id")
    to_create: list[Customer] = []
    to_update: list[Customer] = []
    for incoming in customers:
        current = existing.get(incoming.user_id)
        if current is None:
            to_create.append(
                Customer(user_id=incoming.user_id, country=incoming.country, first_seen_at=incoming.first_seen_at)
            )
            continue
        changed = False
        if incoming.country and incoming.country != current.country:
            current.country = incoming.country
            changed = True
        if incoming.first_seen_at and (current.first_seen_at is None or incoming.first_seen_at < current.first_seen_at):
            current.first_seen_at = incoming.first_seen_at
            changed = True
        if changed:
            to_update.append(current)
    Customer.objects.bulk_create(to_create, batch_size=1000)
    Customer.objects.bulk_update(to_update, ["country", "first_seen_at"], batch_size=1000)
    return CustomerUpsertResult(
        created=len(to_create), updated=len(to_update), unchanged=len(customers) - len(to_create) - len(to_update)
    )


# --- Orders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLineIn:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class OrderIn:
    """An ``Order Completed`` (or ``Order Cancelled``) as the platform stores it.

    Quantities and amounts are positive in both cases: ``status`` says whether these lines were
    bought or given back.
    """

    order_id: str
    placed_at: datetime
    lines: Sequence[OrderLineIn]
    status: str = Order.Status.COMPLETED
    user_id: str | None = None
    anonymous_id: str = ""
    currency: str = ""
    message_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def revenue(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0")).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class OrderImportResult:
    created: int
    already_present: int
    lines_created: int


@transaction.atomic
def order_bulk_record(*, orders: Sequence[OrderIn], origin: str) -> OrderImportResult:
    """Store orders that are not stored yet, with their lines; an ``order_id`` already stored is left as it is.

    Orders are facts that happened: recording the same one again (a re-run of an import, a
    retried event) changes nothing. Customers named by ``user_id`` are created when missing.
    """
    order_ids = [order.order_id for order in orders]
    present = set(Order.objects.filter(order_id__in=order_ids).values_list("order_id", flat=True))
    new_orders = [order for order in orders if order.order_id not in present]
    if not new_orders:
        return OrderImportResult(created=0, already_present=len(orders), lines_created=0)

    user_ids = {order.user_id for order in new_orders if order.user_id}
    customers = Customer.objects.in_bulk(list(user_ids), field_name="user_id")
    missing = user_ids - customers.keys()
    if missing:
        Customer.objects.bulk_create([Customer(user_id=user_id) for user_id in sorted(missing)], ignore_conflicts=True)
        customers = Customer.objects.in_bulk(list(user_ids), field_name="user_id")
    product_ids = product_ids_by_sku({line.sku for order in new_orders for line in order.lines})

    created = Order.objects.bulk_create(
        [
            Order(
                order_id=order.order_id,
                status=order.status,
                customer=customers[order.user_id] if order.user_id else None,
                anonymous_id=order.anonymous_id,
                placed_at=order.placed_at,
                revenue=order.revenue,
                currency=order.currency or settings.PZ_DEFAULT_CURRENCY,
                origin=origin,
                message_id=order.message_id,
                properties=order.properties,
            )
            for order in new_orders
        ],
        batch_size=1000,
    )
    lines = [
        OrderLine(
            order_id=stored.pk,
            position=position,
            product_id=product_ids.get(line.sku),
            sku=line.sku,
            name=line.name[:255],
            quantity=line.quantity,
            unit_price=line.unit_price,
        )
        for stored, order in zip(created, new_orders, strict=True)
        for position, line in enumerate(order.lines, start=1)
    ]
    OrderLine.objects.bulk_create(lines, batch_size=2000)
    return OrderImportResult(created=len(created), already_present=len(present), lines_created=len(lines))


def order_record(*, order: OrderIn, origin: str) -> Order:
    """Store one order (idempotent by ``order_id``) and return the stored row."""
    order_bulk_record(orders=[order], origin=origin)
    return Order.objects.get(order_id=order.order_id)


@transaction.atomic
def order_cancel(*, order_id: str, cancellation: OrderIn) -> Order:
    """An ``Order Cancelled``: the stored order becomes cancelled; one we never saw is stored as a
    cancelled order with the products the event lists. Cancelling twice changes nothing."""
    order = Order.objects.select_for_update().filter(order_id=order_id).first()
    if order is None:
        order_bulk_record(orders=[cancellation], origin=Order.Origin.EVENT)
        return Order.objects.get(order_id=order_id)
    if order.status != Order.Status.CANCELLED:
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
    return order
