"""Reads of the tracking app."""

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, QuerySet

from tracking.models import Customer, Order, OrderLine, Source


def source_for_secret_key(*, digest: str) -> Source | None:
    return Source.objects.filter(secret_key_digest=digest, is_active=True).first()


def source_for_write_key(*, write_key: str) -> Source | None:
    return Source.objects.filter(write_key=write_key, is_active=True).first()


@dataclass(frozen=True)
class SourceInfo:
    id: int
    allowed_origins: tuple[str, ...]


SOURCE_CACHE_SECONDS = 60


_recent_sources: dict[str, tuple[float, tuple[Any, ...]]] = {}


def source_info_for_write_key(write_key: str) -> SourceInfo | None:
    """The collector's lookup of a write key, cached for a minute (a revoked key stops working
    within that minute); unknown keys are cached too, so a flood of bad keys costs no query.

    Each process also keeps what it looked up for those same 60 seconds, which saves the collector
    a Redis round trip per request; it stays bounded by dropping everything past 10,000 keys."""
    now = time.monotonic()
    remembered = _recent_sources.get(write_key)
    if remembered is not None and remembered[0] > now:
        cached = remembered[1]
    else:
        key = "tracking:source:" + hashlib.sha256(write_key.encode()).hexdigest()[:32]
        cached = cache.get(key)
        if cached is None:
            source = source_for_write_key(write_key=write_key)
            cached = (source.pk, tuple(source.allowed_origins or ())) if source else ()
            cache.set(key, cached, SOURCE_CACHE_SECONDS)
        if len(_recent_sources) > 10_000:
            _recent_sources.clear()
        _recent_sources[write_key] = (now + SOURCE_CACHE_SECONDS, cached)
    return SourceInfo(cached[0], cached[1]) if cached else None


def source_write_key(*, name: str) -> str | None:
    """The public write key of an active source, by name (the demo shop embeds its source's)."""
    key: str | None = Source.objects.filter(name=name, is_active=True).values_list("write_key", flat=True).first()
    return key


def customer_get(*, user_id: str) -> Customer | None:
    return Customer.objects.filter(user_id=user_id).first()


@dataclass(frozen=True)
class CustomerSummary:
    user_id: str
    country: str
    orders: int
    last_order_at: datetime | None


def customers_with_most_orders(*, limit: int) -> list[CustomerSummary]:
    """The customers with the most completed orders: the demo shop offers them to browse as."""
    rows = (
        Customer.objects.filter(orders__status=Order.Status.COMPLETED)
        .annotate(order_count=Count("orders"), last_order_at=Max("orders__placed_at"))
        .order_by("-order_count", "user_id")
        .values("user_id", "country", "order_count", "last_order_at")[:limit]
    )
    return [CustomerSummary(row["user_id"], row["country"], row["order_count"], row["last_order_at"]) for row in rows]


def customer_orders(*, user_id: str, limit: int = 20) -> QuerySet[Order]:
    return Order.objects.filter(customer__user_id=user_id).prefetch_related("lines").order_by("-placed_at")[:limit]


def product_order_counts(*, since: datetime | None = None, limit: int | None = 100) -> list[tuple[int, int]]:
    """``(product_id, orders)``: in how many completed orders since a date each product was, most first.

    Orders, not units: one wholesaler's order of 10,000 units should not make a bestseller.
    """
    lines = OrderLine.objects.filter(order__status=Order.Status.COMPLETED, product__isnull=False)
    if since is not None:
        lines = lines.filter(order__placed_at__gte=since)
    rows = (
        lines.values("product_id").annotate(orders=Count("order_id", distinct=True)).order_by("-orders", "product_id")
    )
    if limit is not None:
        rows = rows[:limit]
    return [(row["product_id"], row["orders"]) for row in rows]


def latest_order_time() -> datetime | None:
    """When the newest stored order was placed (the demo's "now" for a historical data set)."""
    latest: datetime | None = Order.objects.aggregate(latest=Max("placed_at"))["latest"]
    return latest


def order_with_lines(*, order_id: str) -> Order | None:
    return Order.objects.prefetch_related("lines").filter(order_id=order_id).first()
