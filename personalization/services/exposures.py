"""The exposure log and attribution, written by the event processing (one call per batch).

- ``Recommendations Served`` (the API's own event, through the stream) is an ``Exposure``.
- ``Product List Viewed`` with ``properties.rec_id`` (the widget, once half visible for a second)
  is an impression of it; ``Product Clicked`` with ``rec_id`` a click on one of its items.
- ``Product Added`` and ``Order Completed`` of a product the same visitor clicked in a
  recommendation within ``PZ_ATTRIBUTION_HOURS`` before are that exposure's add and order (the
  latest such click wins). Without a click nothing is attributed: being shown is not enough.

Every outcome names the event it came from and is stored once, whatever the transport replays.
"""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from django.conf import settings
from django.db.models import Q
from psycopg.types.json import Jsonb, set_json_dumps

from config import sql
from personalization.models import Exposure, ExposureOutcome
from tracking.event_schema import platform_event

SERVED = "Recommendations Served"


def _rec_id(properties: Mapping[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(properties.get("rec_id")))
    except ValueError:
        return None


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def _sku(product: Mapping[str, Any]) -> str:
    key = product.get("product_id")
    return str(key if key not in (None, "") else product.get("sku") or "")


_EXPOSURE_COLUMNS = {  # column: its PostgreSQL type
    "rec_id": "uuid",
    "placement": "text",
    "campaign_id": "bigint",
    "campaign_version": "integer",
    "strategy": "text",
    "personalized": "boolean",
    "note": "text",
    "model_version": "integer",
    "user_id": "text",
    "anonymous_id": "text",
    "items": "jsonb",
    "shown_at": "timestamptz",
}
_EXPOSURES_INSERT = (
    f"INSERT INTO personalization_exposure ({', '.join(_EXPOSURE_COLUMNS)}) "  # noqa: S608 (constants)
    f"SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for kind in _EXPOSURE_COLUMNS.values())}) "
    "ON CONFLICT (rec_id) DO NOTHING"
)


def _exposures_insert(rows: list[dict[str, Any]]) -> None:
    """Store new exposures (their columns' values), leaving those already stored. On PostgreSQL in
    one statement whose arrays psycopg encodes in C: with Django's client-side binding, quoting
    each exposure's values into the SQL in Python took a third of the consumer's time while the
    API was busy. No model instances on that path: building them cost more than encoding."""
    if not rows:
        return
    if not sql.postgres():
        Exposure.objects.bulk_create([Exposure(**row) for row in rows], ignore_conflicts=True)
        return
    values = {column: [row.get(column) for row in rows] for column in _EXPOSURE_COLUMNS}
    values["items"] = [Jsonb(items) for items in values["items"]]
    with sql.bound_cursor() as cursor:
        set_json_dumps(msgspec.json.encode, context=cursor)
        cursor.execute(_EXPOSURES_INSERT, list(values.values()))


def _exposures(events: Sequence[Mapping[str, Any]]) -> None:
    rows = []
    for event in events:
        properties = event.get("properties") or {}
        rec_id = _rec_id(properties)
        if rec_id is None:
            continue
        campaign_id = properties.get("campaign_id")
        rows.append(
            {
                "rec_id": rec_id,
                "placement": str(properties.get("placement") or "")[:64],
                "campaign_id": campaign_id if isinstance(campaign_id, int) else None,
                "campaign_version": properties.get("campaign_version") or None,
                "strategy": str(properties.get("strategy") or "")[:20],
                "personalized": bool(properties.get("personalized")),
                "note": str(properties.get("note") or "")[:200],
                "user_id": event.get("userId") or "",
                "anonymous_id": event.get("anonymousId") or "",
                "items": [
                    {"sku": _sku(p), "position": p.get("position"), "propensity": p.get("propensity")}
                    for p in properties.get("products") or []
                    if isinstance(p, dict)
                ],
                "shown_at": datetime.fromisoformat(event["timestamp"]),
            }
        )
    _exposures_insert(rows)


def _direct(events: Sequence[Mapping[str, Any]]) -> list[ExposureOutcome]:
    """Impressions and clicks: they carry the rec_id."""
    wanted = {}
    for event in events:
        rec_id = _rec_id(event.get("properties") or {})
        if rec_id is not None:
            wanted[event["messageId"]] = (rec_id, event)
    known = set(Exposure.objects.filter(rec_id__in=[r for r, _ in wanted.values()]).values_list("rec_id", flat=True))
    outcomes = []
    for message_id, (rec_id, event) in wanted.items():
        if rec_id not in known:
            continue  # an unknown or unlogged exposure (no analytics consent when it was served)
        properties = event.get("properties") or {}
        click = event["event"] == "Product Clicked"
        position = properties.get("position")
        outcomes.append(
            ExposureOutcome(
                exposure_id=rec_id,
                kind=ExposureOutcome.Kind.CLICK if click else ExposureOutcome.Kind.IMPRESSION,
                sku=_sku(properties) if click else "",
                position=position if isinstance(position, int) and 0 < position < 32768 else None,
                at=datetime.fromisoformat(event["timestamp"]),
                message_id=message_id,
            )
        )
    return outcomes


def _followed(events: Sequence[Mapping[str, Any]]) -> list[ExposureOutcome]:
    """Adds to cart and orders of products the visitor clicked in a recommendation shortly before."""
    lines: list[tuple[Mapping[str, Any], str, int, Decimal, datetime]] = []
    for event in events:
        when = datetime.fromisoformat(event["timestamp"])
        properties = event.get("properties") or {}
        products = [properties] if event["event"] == "Product Added" else properties.get("products") or []
        for product in products:
            if isinstance(product, dict) and _sku(product):
                quantity = product.get("quantity")
                quantity = quantity if isinstance(quantity, int) and quantity > 0 else 1
                lines.append((event, _sku(product), quantity, _money(product.get("price")), when))
    if not lines:
        return []
    window = timedelta(hours=settings.PZ_ATTRIBUTION_HOURS)
    users = {e.get("userId") for e, *_ in lines} - {"", None}
    anonymous = {e.get("anonymousId") for e, *_ in lines} - {"", None}
    query = (
        ExposureOutcome.objects.filter(
            Q(exposure__user_id__in=users) | Q(exposure__anonymous_id__in=anonymous),
            kind=ExposureOutcome.Kind.CLICK,
            sku__in={sku for _, sku, *_ in lines},
            at__gte=min(when for *_, when in lines) - window,
            at__lte=max(when for *_, when in lines),
        )
        .order_by("at")
        .values_list("exposure_id", "exposure__user_id", "exposure__anonymous_id", "sku", "at", "position")
    )
    clicks = list(query)
    outcomes = []
    for event, sku, quantity, price, when in lines:
        mine = [
            click
            for click in clicks
            if click[3] == sku
            and when - window <= click[4] <= when
            and ((click[1] and click[1] == event.get("userId")) or (click[2] and click[2] == event.get("anonymousId")))
        ]
        if not mine:
            continue
        exposure_id, *_, position = mine[-1]
        order = event["event"] == "Order Completed"
        outcomes.append(
            ExposureOutcome(
                exposure_id=exposure_id,
                kind=ExposureOutcome.Kind.ORDER if order else ExposureOutcome.Kind.ADD,
                sku=sku,
                position=position,
                quantity=quantity,
                revenue=price * quantity if order else Decimal("0"),
                at=when,
                message_id=event["messageId"],
            )
        )
    return outcomes


def outcomes_record(events: Sequence[Mapping[str, Any]]) -> None:
    """Record what a batch of newly stored events says about recommendations (see the module)."""
    served = [e for e in events if e.get("event") == SERVED and platform_event(e)]
    direct = [
        e
        for e in events
        if e.get("event") in ("Product List Viewed", "Product Clicked") and (e.get("properties") or {}).get("rec_id")
    ]
    following = [e for e in events if e.get("event") in ("Product Added", "Order Completed")]
    if served:
        _exposures(served)
    outcomes = _direct(direct) if direct else []
    if outcomes:
        ExposureOutcome.objects.bulk_create(outcomes, ignore_conflicts=True)
    if following:
        ExposureOutcome.objects.bulk_create(_followed(following), ignore_conflicts=True)
