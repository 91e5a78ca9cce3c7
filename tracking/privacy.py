"""The tracking app's personal data (customers and their orders) in the personal-data registry."""

from datetime import datetime
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q

from consent.subjects import Identities
from tracking import live_mirror
from tracking.models import Customer, Event, Order, ProcessedBatch, Profile


def _orders(identities: Identities) -> Any:
    return Order.objects.filter(
        Q(customer__user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids)
    )


def _events(identities: Identities) -> Any:
    # ``~Q(user_id="")`` states what the partial index on user_id covers, so PostgreSQL uses it.
    identified = Q(user_id__in=identities.user_ids) & ~Q(user_id="")
    return Event.objects.filter(identified | Q(anonymous_id__in=identities.anonymous_ids))


def _profiles(identities: Identities) -> Any:
    return Profile.objects.filter(Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids))


def subject_export(identities: Identities) -> dict[str, Any]:
    customers = Customer.objects.filter(user_id__in=identities.user_ids)
    orders = _orders(identities).prefetch_related("lines").order_by("placed_at")
    return {
        "customers": [
            {
                "user_id": c.user_id,
                "email": c.email,
                "country": c.country,
                "traits": c.traits,
                "first_seen_at": c.first_seen_at.isoformat() if c.first_seen_at else None,
            }
            for c in customers
        ],
        "orders": [
            {
                "order_id": o.order_id,
                "status": o.status,
                "placed_at": o.placed_at.isoformat(),
                "revenue": str(o.revenue),
                "currency": o.currency,
                "lines": [
                    {"sku": line.sku, "name": line.name, "quantity": line.quantity, "unit_price": str(line.unit_price)}
                    for line in o.lines.all()
                ],
            }
            for o in orders
        ],
        "events": [
            {
                "type": e.type,
                "event": e.event,
                "name": e.name,
                "timestamp": e.timestamp.isoformat(),
                "properties": e.properties,
                "traits": e.traits,
                "context": e.context,
            }
            for e in _events(identities).order_by("timestamp").iterator()
        ],
        "profiles": [
            {
                "key": p.key,
                "first_seen_at": p.first_seen_at.isoformat() if p.first_seen_at else None,
                "last_seen_at": p.last_seen_at.isoformat() if p.last_seen_at else None,
                "counts": {
                    "page_views": p.page_views,
                    "product_views": p.product_views,
                    "adds": p.adds,
                    "orders": p.orders,
                },
                "recently_viewed": p.recently_viewed,
                "cart": p.cart,
                "category_affinity": p.category_affinity,
                "brand_affinity": p.brand_affinity,
                "traits": p.traits,
            }
            for p in _profiles(identities)
        ],
    }


def subject_erase(identities: Identities) -> dict[str, int]:
    """Customers are deleted; their orders stay for the shop's revenue figures, without anyone's
    identity (no customer, no anonymous id, no properties)."""
    customers = Customer.objects.filter(user_id__in=identities.user_ids)
    customer_type = ContentType.objects.get_for_model(Customer)
    log_entries, _ = LogEntry.objects.filter(
        content_type=customer_type, object_id__in=[str(pk) for pk in customers.values_list("pk", flat=True)]
    ).delete()
    orders = _orders(identities).update(customer=None, anonymous_id="", properties={})
    deleted, _ = customers.delete()
    events, _ = _events(identities).delete()
    profiles, _ = _profiles(identities).delete()
    keys = [f"u:{user_id}" for user_id in identities.user_ids] + [f"a:{a}" for a in identities.anonymous_ids]
    live_mirror.mirror_forget(keys)
    # Again once the deletions commit: until then, serving still reads the profiles from the
    # database, and fills the mirror where it has nothing.
    transaction.on_commit(lambda: live_mirror.mirror_forget(keys))
    return {
        "customers deleted": deleted,
        "orders anonymised": orders,
        "admin log entries deleted": log_entries,
        "events deleted": events,
        "profiles deleted": profiles,
    }


def purge(cutoff: datetime) -> dict[str, int]:
    """Raw behavioural data: events older than the retention period."""
    deleted, _ = Event.objects.filter(timestamp__lt=cutoff).delete()
    ProcessedBatch.objects.filter(processed_at__lt=cutoff).delete()  # bookkeeping, not personal data
    return {"events deleted": deleted}
