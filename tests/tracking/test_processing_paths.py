"""The PostgreSQL fast path (psycopg rows, arrays, COPY) and the generic ORM path give the same results."""

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections, transaction

from consent.models import SubjectLink
from personalization.services import category_ensure_paths
from tests.factories import ProductFactory
from tracking import profile_store
from tracking.models import Event, IngestCount, Order, Profile
from tracking.processing import batches_process
from tracking.services import SourceKeys

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(prefix: str, number: int, minutes: float, kind: str, **fields: Any) -> dict[str, Any]:
    when = (START + timedelta(minutes=minutes)).isoformat()
    return {
        "messageId": f"{prefix}-{number}", "type": "track", "event": "", "name": "", "userId": "",
        "anonymousId": f"{prefix}-anon", "groupId": "", "previousId": "", "timestamp": when, "receivedAt": when,
        "sentAt": None, "originalTimestamp": None, "properties": {}, "traits": {}, "context": {},
        **({"event": kind} if kind else {}), **fields,
    }  # fmt: skip


def visit(prefix: str) -> list[list[dict[str, Any]]]:
    """Three batches of one visitor's events: views, a cart, an order, identify (a merge), an alias,
    a late event, a duplicate across batches and one within a batch."""
    first = [
        event(prefix, 1, 0, "Product Viewed", properties={"product_id": "HOLDER"}),
        event(prefix, 2, 1, "Product Viewed", properties={"product_id": "MUG"}),
        event(prefix, 3, 2, "Product Added", properties={"product_id": "MUG", "quantity": 2}),
        event(prefix, 3, 2, "Product Added", properties={"product_id": "MUG", "quantity": 2}),
        event(prefix, 4, 3, "", type="page", name="Home"),
        event(prefix, 5, 3, "Product Viewed", anonymousId=f"{prefix}-other", properties={"product_id": "HOLDER"}),
    ]
    second = [
        first[1],
        event(prefix, 6, 50, "Product Removed", properties={"product_id": "MUG", "quantity": 1}),
        event(
            prefix,
            7,
            51,
            "Order Completed",
            properties={
                "order_id": f"{prefix}-o1",
                "revenue": 6.55,
                "products": [
                    {"product_id": "MUG", "quantity": 1},
                    {"product_id": "HOLDER", "price": 2.55, "quantity": 1},
                ],
            },
        ),
        event(prefix, 8, 52, "", type="identify", userId=f"{prefix}-user", traits={"country": "fr", "plan": "a"}),
        event(prefix, 9, 53, "Product Viewed", userId=f"{prefix}-user", properties={"product_id": "HOLDER"}),
    ]
    third = [
        event(prefix, 10, 54, "", type="alias", userId=f"{prefix}-user", previousId=f"{prefix}-other"),
        event(prefix, 11, 20, "Product Viewed", properties={"product_id": "MUG"}),  # late: after the merge
        event(prefix, 12, 120, "Product Added", userId=f"{prefix}-user", properties={"product_id": "HOLDER"}),
    ]
    return [first, second, third]


def process(source_id: int, prefix: str) -> list[tuple[int, int]]:
    results = []
    for number, events in enumerate(visit(prefix)):
        batch = {
            "id": f"{prefix}-b{number}",
            "source": source_id,
            "received_at": START.isoformat(),
            "events": events,
            "dropped": {"bot": 1},
            "rejected": 0,
        }
        result = batches_process([batch])
        results.append((result.stored, result.duplicates))
    results.append((batches_process([batch]).stored, 0))  # the last batch again: nothing
    return results


def snapshot(prefix: str) -> dict[str, Any]:
    """What processing stored for a prefix, with the prefix taken out and sessions numbered in order."""
    sessions: dict[str, int] = {}

    def plain(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(prefix, "P")
        if isinstance(value, dict):
            return {plain(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    def session(session_id: str) -> int:
        return sessions.setdefault(session_id, len(sessions)) if session_id else -1

    events = Event.objects.filter(message_id__startswith=prefix).order_by("timestamp", "message_id")
    profiles = Profile.objects.filter(key__contains=prefix).select_related("merged_into").order_by("key")
    ignored = {"id", "merged_into", "session_id", "updated_at"}
    return {
        "events": [
            [
                *plain([e.message_id, e.type, e.event, e.user_id, e.anonymous_id, e.timestamp, e.properties, e.traits]),
                session(e.session_id),
            ]
            for e in events
        ],
        "profiles": [
            plain(
                {f.attname: getattr(p, f.attname) for f in Profile._meta.concrete_fields if f.name not in ignored}
                | {"merged_into": p.merged_into.key if p.merged_into else None, "session": session(p.session_id)}
            )
            for p in profiles
        ],
        "orders": plain(
            list(
                Order.objects.filter(order_id__startswith=prefix).values_list(
                    "order_id", "revenue", "anonymous_id", "customer__user_id", "lines__sku", "lines__unit_price"
                )
            )
        ),
        "links": plain(
            list(SubjectLink.objects.filter(user_id__startswith=prefix).values_list("anonymous_id", "user_id"))
        ),
    }


def test_the_fast_path_and_the_generic_path_store_the_same(
    source_keys: SourceKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = category_ensure_paths(paths=["Home Decor > Candles & Holders", "Kitchen & Dining > Mugs & Cups"])
    ProductFactory.create(
        sku="HOLDER", price=Decimal("2.55"), brand="Lumo", category=paths["Home Decor > Candles & Holders"]
    )
    ProductFactory.create(
        sku="MUG", price=Decimal("4.00"), brand="Falcon", category=paths["Kitchen & Dining > Mugs & Cups"]
    )
    source_id = source_keys.source.pk

    fast = process(source_id, "fast")
    monkeypatch.setattr(profile_store, "POSTGRES_FAST_PATH", False)
    generic = process(source_id, "generic")

    assert fast == generic == [(5, 1), (4, 1), (3, 0), (0, 0)]
    assert snapshot("fast") == snapshot("generic")
    profiles = snapshot("fast")["profiles"]
    assert [(p["key"], p["merged_into"]) for p in profiles] == [
        ("a:P-anon", "u:P-user"), ("a:P-other", "u:P-user"), ("u:P-user", None),
    ]  # fmt: skip
    person = profiles[2]
    assert (person["product_views"], person["adds"], person["removes"], person["orders"]) == (5, 2, 1, 1)
    assert (person["page_views"], person["revenue"], person["traits"]) == (
        1,
        Decimal("6.55"),
        {"country": "fr", "plan": "a"},
    )
    assert person["cart"] == {"HOLDER": 1}
    assert IngestCount.objects.get(outcome="stored").count == 2 * 12
    assert IngestCount.objects.get(outcome="duplicate").count == 2 * 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_stored_meanwhile_by_another_process_is_a_duplicate(source_keys: SourceKeys) -> None:
    """The dedup check cannot see an event another transaction is storing (not committed yet): the
    COPY then waits for it, is refused by the unique index, and the batch is processed again."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has a single writer")
    source_id = source_keys.source.pk
    first = visit("race")[0][0]
    storing, stored = threading.Event(), threading.Event()

    def other_process() -> None:
        try:
            with transaction.atomic():
                Event.objects.create(
                    source_id=source_id, message_id=first["messageId"], type="track", event=first["event"],
                    anonymous_id=first["anonymousId"], timestamp=START, received_at=START,
                )  # fmt: skip
                storing.set()
                time.sleep(1)  # meanwhile the batch below checks, applies, and waits in its COPY
        finally:
            connections.close_all()
            stored.set()

    thread = threading.Thread(target=other_process)
    thread.start()
    assert storing.wait(10)
    batch = {"id": "race-b", "source": source_id, "received_at": START.isoformat(), "events": [first]}
    result = batches_process([{**batch, "dropped": {}, "rejected": 0}])
    thread.join()
    assert stored.is_set()
    assert (result.stored, result.duplicates) == (0, 1)
    assert Event.objects.filter(message_id=first["messageId"]).count() == 1
    assert not Profile.objects.filter(key="a:race-anon").exists()  # the first attempt's profile was rolled back
    assert IngestCount.objects.get(outcome="duplicate").count == 1
