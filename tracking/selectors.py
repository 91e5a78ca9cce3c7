"""Reads of the tracking app."""

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet

from config import sql
from config.store_outages import STORE_ERRORS
from tracking import live_mirror
from tracking.event_schema import product_key
from tracking.models import Customer, Event, Order, OrderLine, Profile, Source
from tracking.profile_rules import SESSION_GAP, decayed
from tracking.source_keys import SECRET_KEY_PREFIX, secret_key_digest


def source_for_secret_key(*, digest: str) -> Source | None:
    return Source.objects.filter(secret_key_digest=digest, is_active=True).first()


def source_for_write_key(*, write_key: str) -> Source | None:
    return Source.objects.filter(write_key=write_key, is_active=True).first()


@dataclass(frozen=True)
class SourceInfo:
    """What the collector knows of the source a request's key belongs to. ``by_secret_key``: the
    request came with the source's secret key (a shop's server), so every user id in it is its word;
    ``secret_key_digest`` checks the userTokens of the others."""

    id: int
    allowed_origins: tuple[str, ...]
    secret_key_digest: str
    by_secret_key: bool


SOURCE_CACHE_SECONDS = 60
# How long the last-known copy of a source lasts, which the collector goes by while PostgreSQL is down.
SOURCE_KNOWN_SECONDS = 7 * 86_400


_recent_sources: dict[str, tuple[float, tuple[Any, ...]]] = {}


def source_cache_key(lookup: str) -> str:
    """The cache key of the source of a write key or of a secret key's digest (``:known`` appended:
    its last-known copy)."""
    # Named apart from the key the copies of (id, origins) had: those lack the secret key's digest.
    return "tracking:source-info:" + hashlib.sha256(lookup.encode()).hexdigest()[:32]


def source_info_for_key(key: str) -> SourceInfo | None:
    """The collector's lookup of a write key or a secret key, cached for a minute (a revoked key
    stops working within that minute); unknown keys are cached too, so a flood of bad keys costs
    no query. A secret key is looked up, and cached, by its digest only.

    Each process also keeps what it looked up for those same 60 seconds, which saves the collector
    a Redis round trip per request; it stays bounded by dropping everything past 10,000 keys."""
    by_secret_key = key.startswith(SECRET_KEY_PREFIX)
    lookup = secret_key_digest(key) if by_secret_key else key
    now = time.monotonic()
    remembered = _recent_sources.get(lookup)
    if remembered is not None and remembered[0] > now:
        cached = remembered[1]
    else:
        cache_key = source_cache_key(lookup)
        cached = cache.get(cache_key)
        if cached is None:
            cached = _source_read(lookup, cache_key, by_secret_key=by_secret_key)
        if len(_recent_sources) > 10_000:
            _recent_sources.clear()
        _recent_sources[lookup] = (now + SOURCE_CACHE_SECONDS, cached)
    return SourceInfo(cached[0], cached[1], cached[2], by_secret_key) if cached else None


def _source_read(lookup: str, key: str, *, by_secret_key: bool) -> tuple[Any, ...]:
    """A key's source from the database, cached for a minute, and kept longer as the last-known
    copy: while PostgreSQL is down the collector goes by that copy (it is refreshed whenever the key
    is read, so a revocation the database answered is in it), and answers 503 only for a key it
    has no copy of."""
    try:
        source = source_for_secret_key(digest=lookup) if by_secret_key else source_for_write_key(write_key=lookup)
    except STORE_ERRORS:
        known: tuple[Any, ...] | None = cache.get(key + ":known")
        if known is None:
            raise
        return known
    found = (source.pk, tuple(source.allowed_origins or ()), source.secret_key_digest) if source else ()
    cache.set(key, found, SOURCE_CACHE_SECONDS)
    cache.set(key + ":known", found, SOURCE_KNOWN_SECONDS)
    return found


def source_by_name(*, name: str) -> Source | None:
    """An active source, by name (the demo shop embeds its source's write key and signs its
    customers' ids with its secret key's digest)."""
    return Source.objects.filter(name=name, is_active=True).first()


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


# --- what people did, for the recommenders --------------------------------------------------------

PurchaseLine = tuple[str, str, int, datetime, int]
ProductEvent = tuple[str, str, str, datetime, str, str]
INTEREST_EVENTS = ("Product Viewed", "Product Clicked", "Product Added")


def purchase_lines(*, since: datetime | None = None, until: datetime | None = None) -> Iterator[PurchaseLine]:
    """``(user_id, anonymous_id, product_id, placed_at, order_pk)`` of every line of every completed
    order (imported, checked out or tracked: they share the table), in time order and, within an
    order, in the order the lines were entered. Lines of products no longer in the catalog are left out."""
    lines = OrderLine.objects.filter(order__status=Order.Status.COMPLETED, product__isnull=False)
    if since is not None:
        lines = lines.filter(order__placed_at__gte=since)
    if until is not None:
        lines = lines.filter(order__placed_at__lt=until)
    rows = lines.order_by("order__placed_at", "order_id", "position").values_list(
        "order__customer__user_id", "order__anonymous_id", "product_id", "order__placed_at", "order_id"
    )
    for user_id, anonymous_id, product_id, placed_at, order_pk in rows.iterator(chunk_size=20_000):
        yield user_id or "", anonymous_id or "", product_id, placed_at, order_pk


def product_events(*, since: datetime | None = None, until: datetime | None = None) -> Iterator[ProductEvent]:
    """``(user_id, anonymous_id, event, timestamp, session_id, product key)`` of stored product
    views, clicks and adds to cart, in time order. Purchases come from ``purchase_lines``."""
    events = Event.objects.filter(type="track", event__in=INTEREST_EVENTS)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    rows = events.order_by("timestamp", "id").values_list(
        "user_id", "anonymous_id", "event", "timestamp", "session_id", "properties"
    )
    for user_id, anonymous_id, name, timestamp, session_id, properties in rows.iterator(chunk_size=20_000):
        key = product_key(properties) if isinstance(properties, dict) else ""
        if key:
            yield user_id, anonymous_id, name, timestamp, session_id, key


def customer_countries(user_ids: Iterable[str]) -> dict[str, str]:
    """``{user_id: country}`` of the known customers among ``user_ids`` (blank countries left out)."""
    wanted = list(set(user_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 5000):
        rows = Customer.objects.filter(user_id__in=wanted[start : start + 5000]).exclude(country="")
        found.update(rows.values_list("user_id", "country"))
    return found


@dataclass(frozen=True)
class LiveProfile:
    """What a visitor did lately, as the real-time profile has it (updated with every event)."""

    recently_viewed: list[str]  # SKUs, newest first
    cart: dict[str, int]  # {SKU: quantity}
    category_affinity: dict[str, float]  # decayed to now
    brand_affinity: dict[str, float]
    orders: int
    last_seen_at: datetime | None
    sessions: int | None  # None: read from a mirror entry written before they were mirrored

    def returning(self, now: datetime) -> bool:
        """Seen in an earlier session: this visit is not their first (a visitor back after the
        session gap opens a new session with this request)."""
        if self.last_seen_at is None:
            return False
        if self.sessions is None or now - self.last_seen_at > SESSION_GAP:
            return True
        return self.sessions > 1


_LIVE_COLUMNS = live_mirror.LIVE_COLUMNS
_LIVE_SQL = (  # the columns of the profile it was merged into, if it was, and that profile's key
    "SELECT p.key, "  # noqa: S608 (constants)
    + ", ".join(f"CASE WHEN m.id IS NULL THEN p.{c} ELSE m.{c} END" for c in _LIVE_COLUMNS)
    + ", m.key FROM tracking_profile p LEFT JOIN tracking_profile m ON m.id = p.merged_into_id WHERE p.key = ANY(%s)"
)


def _from_mirror(keys: list[str], read: Sequence[bytes | None] | None) -> tuple[bool, tuple[Any, ...] | None]:
    """(whether the mirror knows, the live columns of the first of ``keys`` with a profile)."""
    entries = live_mirror.decoded(read) if read is not None else live_mirror.mirror_read(keys)
    for entry in entries:
        if entry is not None and entry[0] == "merged":
            (entry,) = live_mirror.mirror_read([entry[1]])
            if entry is not None and entry[0] != "profile":
                entry = None  # a pointer to nothing: ask the database
        if entry is None:
            return False, None
        if entry[0] == "profile":
            return True, live_mirror.profile_columns(entry)
    return True, None


def _from_database(keys: list[str]) -> dict[str, tuple[Any, ...]]:
    """``{key: live columns}`` of the profiles found, filling the mirror where it has nothing."""
    if not sql.postgres():
        return {
            p.key: tuple(getattr(p.merged_into or p, column) for column in _LIVE_COLUMNS)
            for p in Profile.objects.select_related("merged_into").filter(key__in=keys).order_by()
        }
    # Django has psycopg hand JSON over as text (its fields decode it): decoded here.
    rows = sql.fetch_all(_LIVE_SQL, (keys,))
    if live_mirror.mirrored():
        entries = dict.fromkeys(keys, live_mirror.ENTRY_NONE)
        for key, *columns, target in rows:
            entry = live_mirror.entry_of_profile([msgspec.Raw(value.encode()) for value in columns[:4]], *columns[4:])
            if target is not None:
                entries[target] = entry
                entry = live_mirror.entry_of_pointer(target)
            entries[key] = entry
        live_mirror.mirror_write(entries, only_new=True)
    return {row[0]: (*(msgspec.json.decode(value) for value in row[1:5]), *row[5:8]) for row in rows}


def live_profile(
    *, user_id: str = "", anonymous_id: str = "", mirror_entries: Sequence[bytes | None] | None = None
) -> LiveProfile | None:
    """The visitor's real-time profile: the person's if they are known, else the browser's,
    following a merge into the person it was identified as. From the Redis mirror when it has
    them (``tracking.live_mirror``; ``mirror_entries``: its entries, already read), else from the
    database (one query)."""
    keys = live_mirror.profile_keys(user_id, anonymous_id)
    if not keys:
        return None
    known, columns = _from_mirror(keys, mirror_entries) if live_mirror.mirrored() else (False, None)
    if not known:
        found = _from_database(keys)
        columns = found.get(keys[0]) or (found.get(f"a:{anonymous_id}") if anonymous_id else None)
    if columns is None:
        return None
    recently_viewed, cart, category_affinity, brand_affinity, orders, last_seen_at, sessions = columns
    now = time.time()
    return LiveProfile(
        recently_viewed=[str(sku) for sku in recently_viewed],
        cart={str(sku): int(quantity) for sku, quantity in cart.items()},
        category_affinity={k: decayed(score, since, now) for k, (score, since) in category_affinity.items()},
        brand_affinity={k: decayed(score, since, now) for k, (score, since) in brand_affinity.items()},
        orders=orders,
        last_seen_at=last_seen_at,
        sessions=sessions,
    )


def purchased_skus(*, user_id: str = "", anonymous_id: str = "", since: datetime | None = None) -> set[str]:
    """The SKUs a visitor bought (completed orders, optionally since a moment): one query."""
    if not user_id and not anonymous_id:
        return set()
    who = Q(order__customer__user_id=user_id) if user_id else Q()
    if anonymous_id:
        who = who | Q(order__anonymous_id=anonymous_id) if user_id else Q(order__anonymous_id=anonymous_id)
    lines = OrderLine.objects.filter(who, order__status=Order.Status.COMPLETED)
    if since is not None:
        lines = lines.filter(order__placed_at__gte=since)
    return set(lines.values_list("sku", flat=True).distinct())
