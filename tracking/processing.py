"""Processing of ingested batches: the one function both transports call.

In-process (no Redis) the collector calls ``batches_process`` before it answers; with Redis the
``consume_events`` processes call it with what they read from the stream. In one transaction it:

1. stores the events, deduplicated on (source, messageId) against everything already stored;
2. for the events stored just now (never for a duplicate), assigns sessions, links identities
   (identify, alias), updates each visitor's real-time profile and records orders;
3. counts what became of every event of the batches (stored, duplicate, dropped, rejected).

Because the profile changes commit with the events that caused them, a consumer killed at any
point and restarted (or replaced) ends with every event stored once and counted once: a batch
processed again finds its events stored and changes nothing.

It stores what ``tracking.ingestion`` let through and nothing else, and relies on it: times with
a zone from 1970 to 2099, ids that fit their columns, no NUL character, no nesting past 64
levels, prices and order totals that fit the order tables (``tracking.event_schema``). A new rule
of what the database cannot hold belongs there, where the event is refused with its field.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import psycopg
from django.db import IntegrityError, connection, transaction
from psycopg.types.json import set_json_dumps

from config.sql import bound_cursor
from consent.selectors import linked_users
from consent.services import subject_link
from consent.suppression import suppressed_ids
from personalization.selectors import products_by_skus
from personalization.services.exposures import outcomes_record
from tracking.event_schema import PRODUCT_EVENTS, platform_event, product_key
from tracking.event_time import utc
from tracking.models import Event, IngestCount, Order, ProcessedBatch
from tracking.profile_rules import WEIGHTS, add_affinity, assign_session, cart_change, push_recent
from tracking.profile_store import LockedProfiles, ProfileRow, postgres_fast_path
from tracking.services import CustomerIn, OrderIn, OrderLineIn, customer_bulk_upsert, order_bulk_record, order_cancel


@dataclass(frozen=True)
class ProcessResult:
    stored: int
    duplicates: int
    suppressed: int = 0  # events of erased people, dropped


def batches_process(batches: Sequence[Mapping[str, Any]]) -> ProcessResult:
    """Store and apply a list of ingested batches (``{"id", "source", "received_at", "events",
    "dropped", "rejected"}``) in one transaction. A batch processed before is skipped whole.

    Two processes touching the same new visitor at the same moment make one of them fail on a
    unique key; it is retried (twice) in a fresh transaction, which then sees the other's work."""
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _process(batches)
        except (IntegrityError, psycopg.IntegrityError):  # Django's and (our own cursors) psycopg's
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _process(batches: Sequence[Mapping[str, Any]]) -> ProcessResult:
    new_ids = _mark_processed([batch["id"] for batch in batches])
    first: dict[str, Mapping[str, Any]] = {}  # each new batch once, even twice in one micro-batch (a redrive)
    for batch in batches:
        if batch["id"] in new_ids:
            first.setdefault(batch["id"], batch)
    batches = list(first.values())
    unique: dict[tuple[int, str], tuple[int, dict[str, Any]]] = {}
    total = 0
    for batch in batches:
        for event in batch["events"]:
            total += 1
            unique.setdefault((int(batch["source"]), event["messageId"]), (int(batch["source"]), event))
    suppressed = _suppressed_events((key, event) for key, (_, event) in unique.items())
    for key in suppressed:
        del unique[key]
    stored: list[tuple[int, dict[str, Any]]] = []
    if unique:
        # Lock the visitors' profiles first: every copy of an event belongs to the same visitor, so
        # once locked, what is already stored cannot change under us. The platform's own events
        # (exposures) change no profile and lock none: a copy stored meanwhile by another consumer
        # (a redelivery) makes the unique index refuse the insert, and the batch is retried.
        visitors = [event for _, event in unique.values() if not platform_event(event)]
        links, profiles = _lock_profiles(visitors) if visitors else ({}, None)
        existing = _stored_keys(list(unique))
        stored = [row for key, row in unique.items() if key not in existing]
        if stored:
            sessions = _apply(stored, links, profiles) if profiles is not None else {}
            _insert_events(stored, sessions)
            outcomes_record([event for _, event in stored])
    dropped = _count(batches, {(source_id, event["messageId"]) for source_id, event in stored}, suppressed)
    return ProcessResult(stored=len(stored), duplicates=total - len(stored) - dropped, suppressed=dropped)


def _mark_processed(batch_ids: Sequence[str]) -> set[str]:
    """Record the batches as processed; return those that were not already."""
    wanted = list(dict.fromkeys(batch_ids))
    if postgres_fast_path():
        with bound_cursor() as cursor:
            cursor.execute(
                "INSERT INTO tracking_processedbatch (id, processed_at) SELECT unnest(%b::text[]), now() "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                [wanted],
            )
            return {row[0] for row in cursor.fetchall()}
    existing = set(ProcessedBatch.objects.filter(id__in=wanted).values_list("id", flat=True))
    new = [batch_id for batch_id in wanted if batch_id not in existing]
    ProcessedBatch.objects.bulk_create([ProcessedBatch(id=batch_id) for batch_id in new])
    return set(new)


# --- erased people ----------------------------------------------------------------------------


def _ids_of(event: Mapping[str, Any]) -> list[str]:
    """The ids an event is of, as profile keys: its user's, its anonymous id's, an alias's previous id's."""
    ids = [f"u:{event['userId']}"] if event.get("userId") else []
    ids += [f"a:{event['anonymousId']}"] if event.get("anonymousId") else []
    ids += [f"a:{event['previousId']}"] if event["type"] == "alias" and event.get("previousId") else []
    return ids


def _suppressed_events(events: Iterable[tuple[tuple[int, str], Mapping[str, Any]]]) -> set[tuple[int, str]]:
    """The keys of the events of erased people (see ``consent.suppression``): of a suppressed id, or
    of an id that an event of these batches ties to one (an identify, an alias, an event with both
    ids), so that nothing is stored, linked or profiled for them. One query for all the ids."""
    events = list(events)
    keys = {key for _, event in events for key in _ids_of(event)}
    users, anonymous = suppressed_ids(
        user_ids={key[2:] for key in keys if key[0] == "u"}, anonymous_ids={key[2:] for key in keys if key[0] == "a"}
    )
    if not users and not anonymous:
        return set()
    group: dict[str, str] = {}  # the ids the events tie together, each group under one of its ids

    def root(key: str) -> str:
        while group.get(key, key) != key:
            key = group[key]
        return key

    for _, event in events:
        ids = _ids_of(event)
        for other in ids[1:]:
            group[root(other)] = root(ids[0])
    erased = {root(f"u:{u}") for u in users} | {root(f"a:{a}") for a in anonymous}
    return {key for key, event in events if root(_ids_of(event)[0]) in erased}  # every event has an id


# --- storing events ----------------------------------------------------------------------------

_COLUMNS = [
    "source_id", "message_id", "type", "event", "name", "user_id", "anonymous_id", "group_id", "previous_id",
    "session_id", "timestamp", "received_at", "sent_at", "original_timestamp", "properties", "traits", "context",
]  # fmt: skip
_TYPES = [
    "bigint", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "timestamptz", "timestamptz", "timestamptz", "timestamptz", "jsonb", "jsonb", "jsonb",
]  # fmt: skip


def _when(value: str | None) -> datetime | None:
    """An event's time as the collector wrote it: ISO 8601 in UTC. A time without a zone, which
    entries appended before the collector took such times as UTC may hold, is taken as UTC too."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else utc(moment)


def _values(source_id: int, event: Mapping[str, Any], session_id: str) -> list[Any]:
    return [
        source_id,
        event["messageId"],
        event["type"],
        event.get("event") or "",
        event.get("name") or "",
        event.get("userId") or "",
        event.get("anonymousId") or "",
        event.get("groupId") or "",
        event.get("previousId") or "",
        session_id,
        _when(event["timestamp"]),
        _when(event["receivedAt"]),
        _when(event.get("sentAt")),
        _when(event.get("originalTimestamp")),
        event.get("properties") or {},
        event.get("traits") or {},
        event.get("context") or {},
    ]


def _stored_keys(keys: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of these (source, messageId) are stored already: one indexed lookup."""
    if postgres_fast_path():
        with bound_cursor() as cursor:
            cursor.execute(
                "SELECT e.source_id, e.message_id FROM tracking_event e "
                "JOIN unnest(%b::bigint[], %b::text[]) AS k(source_id, message_id) "
                "ON e.source_id = k.source_id AND e.message_id = k.message_id",
                [[source for source, _ in keys], [message for _, message in keys]],
            )
            return {(source_id, message_id) for source_id, message_id in cursor.fetchall()}
    existing: set[tuple[int, str]] = set()
    by_source: defaultdict[int, list[str]] = defaultdict(list)
    for source_id, message_id in keys:
        by_source[source_id].append(message_id)
    for source_id, message_ids in by_source.items():
        for start in range(0, len(message_ids), 500):
            found = Event.objects.filter(source_id=source_id, message_id__in=message_ids[start : start + 500])
            existing.update((source_id, message_id) for message_id in found.values_list("message_id", flat=True))
    return existing


def _insert_events(rows: Sequence[tuple[int, Mapping[str, Any]]], sessions: Mapping[tuple[int, str], str]) -> None:
    """Insert the events (with their sessions), known not to be stored: their visitors are locked.

    Should another process store one of them meanwhile all the same (a visitor linked to a person
    under our feet), the unique (source, message_id) index refuses it and the transaction is retried."""
    values = [_values(source_id, event, sessions.get((source_id, event["messageId"]), "")) for source_id, event in rows]
    if postgres_fast_path():
        _copy_postgres(values)
    else:
        Event.objects.bulk_create([Event(**dict(zip(_COLUMNS, v, strict=True))) for v in values], batch_size=500)


def _copy_postgres(rows: Sequence[list[Any]]) -> None:
    """COPY in binary: each value encoded in C, no SQL to parse, no arrays to build (was an INSERT
    ... SELECT FROM unnest() with ON CONFLICT, which cost twice as much per event)."""
    with bound_cursor() as cursor:
        set_json_dumps(msgspec.json.encode, context=cursor)
        with cursor.copy(f"COPY tracking_event ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TYPES)
            for values in rows:
                copy.write_row(values)


# --- applying stored events --------------------------------------------------------------------


def _profile_key(event: Mapping[str, Any], links: Mapping[str, str]) -> str:
    if event.get("userId"):
        return f"u:{event['userId']}"
    anonymous_id = event["anonymousId"]
    return f"u:{links[anonymous_id]}" if anonymous_id in links else f"a:{anonymous_id}"


def _lock_profiles(events: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str], LockedProfiles]:
    """The identity links of the events' anonymous ids, and their visitors' profiles, locked."""
    anonymous_ids = {e["anonymousId"] for e in events if e.get("anonymousId")}
    anonymous_ids |= {e["previousId"] for e in events if e["type"] == "alias" and e.get("previousId")}
    links = linked_users(anonymous_ids)
    keys = {_profile_key(e, links) for e in events}
    keys |= {f"a:{a}" for a in anonymous_ids}  # identify/alias may merge them
    keys |= {f"u:{e['userId']}" for e in events if e.get("userId")}
    return links, LockedProfiles(keys)


def _apply(
    stored: list[tuple[int, dict[str, Any]]], links: dict[str, str], profiles: LockedProfiles
) -> dict[tuple[int, str], str]:
    """Apply new events, in time order, to sessions, identities, profiles and orders; return the
    session of each event."""
    stored.sort(key=lambda row: row[1]["timestamp"])
    catalog = products_by_skus(
        {product_key(p) for _, e in stored if e.get("event") in SHAPING_EVENTS for p in _products_of(e)} - {""}
    )
    sessions: dict[tuple[int, str], str] = {}
    orders: list[OrderIn] = []
    cancellations: list[tuple[str, OrderIn]] = []
    customers: dict[str, CustomerIn] = {}

    for source_id, event in stored:
        if platform_event(event):  # what was shown to the visitor is not something they did
            continue
        when = utc(datetime.fromisoformat(event["timestamp"]))
        if event["type"] in ("identify", "alias"):
            _stitch(event, links, profiles, customers)
        profile = profiles.get(_profile_key(event, links))
        sessions[(source_id, event["messageId"])] = assign_session(profiles.session(profile), when)
        profile.first_seen_at = min(profile.first_seen_at or when, when)
        profile.last_seen_at = max(profile.last_seen_at or when, when)
        if event["type"] in ("page", "screen"):
            profile.page_views += 1
        elif event["type"] == "track":
            _track(profile, event, when, catalog, orders, cancellations)

    profiles.save()
    if customers:
        customer_bulk_upsert(customers=list(customers.values()))
    if orders:
        order_bulk_record(orders=orders, origin=Order.Origin.EVENT)
    for order_id, order in cancellations:
        order_cancel(order_id=order_id, cancellation=order)
    return sessions


# The track events whose products change a profile (views, cart, affinities, counters) or record
# an order; the products of others (an exposure's, a list's) need no catalog lookup.
SHAPING_EVENTS = frozenset({*PRODUCT_EVENTS, "Order Completed", "Order Cancelled"})


def _products_of(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    properties = event.get("properties") or {}
    if event.get("event") in PRODUCT_EVENTS:
        return [properties]
    products = properties.get("products")
    return [p for p in products if isinstance(p, dict)] if isinstance(products, list) else []


def _stitch(
    event: Mapping[str, Any], links: dict[str, str], profiles: LockedProfiles, customers: dict[str, CustomerIn]
) -> None:
    """identify and alias link an anonymous id (or an alias's previous id) to a user, merge its
    profile into the person's, and keep the traits."""
    user_id = event.get("userId") or ""
    anonymous_id = event.get("anonymousId") if event["type"] == "identify" else event.get("previousId")
    if user_id and event["type"] == "identify":
        traits = event.get("traits") or {}
        customers[user_id] = CustomerIn(user_id=user_id, country=_country(traits))
        profile = profiles.get(f"u:{user_id}")
        profile.traits = {**profile.traits, **traits}
    if not user_id or not anonymous_id or links.get(anonymous_id) == user_id:
        return
    subject_link(anonymous_id=anonymous_id, user_id=user_id, source=event["type"])
    links[anonymous_id] = user_id
    anonymous = profiles.by_key.get(f"a:{anonymous_id}")
    if anonymous is not None and anonymous.merged_into_id is None and anonymous.merged_into is None:
        _merge(profiles.get(f"u:{user_id}"), anonymous, profiles)


def _country(traits: Mapping[str, Any]) -> str:
    address = traits.get("address")
    country = address.get("country") if isinstance(address, dict) else traits.get("country")
    return country.upper() if isinstance(country, str) and len(country) == 2 else ""


def _merge(target: ProfileRow, source: ProfileRow, profiles: LockedProfiles) -> None:
    """An anonymous visitor turned out to be this person: their profile joins the person's."""
    for field in ("page_views", "product_views", "adds", "removes", "orders", "cancellations", "revenue"):
        setattr(target, field, getattr(target, field) + getattr(source, field))
    seen = [t for t in (target.first_seen_at, source.first_seen_at) if t]
    target.first_seen_at = min(seen) if seen else None
    last = [t for t in (target.last_seen_at, source.last_seen_at) if t]
    target.last_seen_at = max(last) if last else None
    if source.last_order_at and (target.last_order_at is None or source.last_order_at > target.last_order_at):
        target.last_order_at, target.last_order_id = source.last_order_at, source.last_order_id
    recent = list(target.recently_viewed)
    for sku in reversed(source.recently_viewed):
        recent = push_recent(recent, sku)
    target.recently_viewed = recent
    for sku, quantity in source.cart.items():
        cart_change(target.cart, sku, quantity)
    for field in ("category_affinity", "brand_affinity"):
        mine: dict[str, list[float]] = getattr(target, field)
        for key, (score, since) in getattr(source, field).items():
            add_affinity(mine, key, score, datetime.fromtimestamp(since).astimezone())
    target_state, source_state = profiles.session(target), profiles.session(source)
    target_state.sessions += source_state.sessions
    if source_state.last_seen_at and (
        target_state.last_seen_at is None or source_state.last_seen_at > target_state.last_seen_at
    ):
        target_state.session_id, target_state.started_at = source_state.session_id, source_state.started_at
        target_state.last_seen_at = source_state.last_seen_at
    source.merged_into = target


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def _track(
    profile: ProfileRow,
    event: Mapping[str, Any],
    when: datetime,
    catalog: Mapping[str, Any],
    orders: list[OrderIn],
    cancellations: list[tuple[str, OrderIn]],
) -> None:
    name = event["event"]
    if name not in SHAPING_EVENTS:  # e.g. the exposures of recommendations, a list viewed: stored, no more
        return
    weight = WEIGHTS.get(name, 0.0)
    for product in _products_of(event):
        sku = product_key(product)
        known = catalog.get(sku)
        category = known.category.path if known is not None and known.category else str(product.get("category") or "")
        brand = (known.brand if known is not None else "") or str(product.get("brand") or "")
        if weight > 0:  # (not reading a JSON column saves decoding and rewriting it)
            if category:
                add_affinity(profile.category_affinity, category, weight, when)
            if brand:
                add_affinity(profile.brand_affinity, brand, weight, when)
        quantity = int(product.get("quantity") or 1)
        if name in ("Product Viewed", "Product Clicked"):
            profile.recently_viewed = push_recent(profile.recently_viewed, sku)
        elif name == "Product Added":
            cart_change(profile.cart, sku, quantity)
        elif name == "Product Removed" or name == "Order Completed":
            cart_change(profile.cart, sku, -quantity)
    if name == "Product Viewed":
        profile.product_views += 1
    elif name == "Product Added":
        profile.adds += 1
    elif name == "Product Removed":
        profile.removes += 1
    elif name in ("Order Completed", "Order Cancelled"):
        order = _order(event, when, catalog)
        if name == "Order Completed":
            profile.orders += 1
            profile.revenue += order.revenue
            if profile.last_order_at is None or when >= profile.last_order_at:
                profile.last_order_at, profile.last_order_id = when, order.order_id
            orders.append(order)
        else:
            profile.cancellations += 1
            cancellations.append((order.order_id, order))


def _order(event: Mapping[str, Any], when: datetime, catalog: Mapping[str, Any]) -> OrderIn:
    properties = event.get("properties") or {}
    lines = []
    for product in _products_of(event):
        sku = product_key(product)
        known = catalog.get(sku)
        price = product.get("price")
        unit_price = _money(price) if price is not None else (known.price if known is not None else Decimal("0"))
        lines.append(
            OrderLineIn(
                sku,
                str(product.get("name") or (known.name if known else "")),
                int(product.get("quantity") or 1),
                unit_price,
            )
        )
    status = Order.Status.CANCELLED if event["event"] == "Order Cancelled" else Order.Status.COMPLETED
    return OrderIn(
        order_id=str(properties["order_id"]),
        placed_at=when,
        lines=lines,
        status=status,
        user_id=event.get("userId") or None,
        anonymous_id=event.get("anonymousId") or "",
        currency=str(properties.get("currency") or "").upper(),
        message_id=event["messageId"],
        properties={k: v for k, v in properties.items() if k != "products"},
    )


# --- counting ------------------------------------------------------------------------------------


def _count(
    batches: Sequence[Mapping[str, Any]], stored_ids: set[tuple[int, str]], suppressed: set[tuple[int, str]]
) -> int:
    """Count what became of each event of the batches; return how many were suppressed."""
    counts: defaultdict[tuple[date, int, str], int] = defaultdict(int)
    dropped = 0
    for batch in batches:
        day = datetime.fromisoformat(batch["received_at"]).date()
        source_id = int(batch["source"])
        for event in batch["events"]:
            key = (source_id, event["messageId"])
            if key in suppressed:  # every copy: none was stored
                outcome = IngestCount.Outcome.SUPPRESSED
                dropped += 1
            elif key in stored_ids:
                outcome = IngestCount.Outcome.STORED
            else:
                outcome = IngestCount.Outcome.DUPLICATE
            stored_ids.discard(key)  # a repeat of it in the batches is a duplicate
            counts[(day, source_id, outcome)] += 1
        for outcome, number in (batch.get("dropped") or {}).items():
            counts[(day, source_id, outcome)] += int(number)
        if batch.get("rejected"):
            counts[(day, source_id, IngestCount.Outcome.REJECTED)] += int(batch["rejected"])
    rows = [(day, source_id, outcome, number) for (day, source_id, outcome), number in counts.items() if number]
    if not rows:
        return dropped
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    sql = (
        f"INSERT INTO tracking_ingestcount (day, source_id, outcome, count) VALUES {placeholders} "  # noqa: S608
        "ON CONFLICT (day, source_id, outcome) DO UPDATE SET count = tracking_ingestcount.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
    return dropped
