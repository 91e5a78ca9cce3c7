"""What processing does with stored events: profiles, sessions, identity, orders; exactly once."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from consent.models import Purpose, SubjectLink
from consent.services import refresh_policy_cache
from personalization.services import category_ensure_paths
from tests.factories import ProductFactory
from tracking.models import Customer, Event, IngestCount, Order, Profile
from tracking.processing import batches_process
from tracking.services import SourceKeys

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def analytics_allowed() -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()


@pytest.fixture
def catalog() -> None:
    paths = category_ensure_paths(paths=["Home Decor > Candles & Holders", "Kitchen & Dining > Mugs & Cups"])
    ProductFactory.create(
        sku="HOLDER",
        name="Holder",
        price=Decimal("2.55"),
        brand="Lumo",
        category=paths["Home Decor > Candles & Holders"],
    )
    ProductFactory.create(
        sku="MUG", name="Mug", price=Decimal("4.00"), brand="Falcon", category=paths["Kitchen & Dining > Mugs & Cups"]
    )


def send(client: Client, keys: SourceKeys, events: list[dict[str, object]], drain: Callable[[], int]) -> None:
    for number, event in enumerate(events):
        event.setdefault("messageId", f"m-{event.get('event') or event['type']}-{number}-{event.get('timestamp')}")
    response = client.post(  # the shop's server: its secret key vouches for the user ids
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}"
    )
    assert response.status_code == 200, response.content
    assert response.json()["rejected"] == []
    drain()


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def track(name: str, minutes: float, anonymous_id: str = "anon-1", **properties: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": name,
        "anonymousId": anonymous_id,
        "timestamp": at(minutes),
        "properties": properties,
    }


@pytest.mark.usefixtures("catalog")
def test_a_visit_builds_the_profile(client: Client, source_keys: SourceKeys, drain: Callable[[], int]) -> None:
    send(
        client,
        source_keys,
        [
            {"type": "page", "anonymousId": "anon-1", "timestamp": at(0), "name": "Home"},
            track("Product Viewed", 1, product_id="HOLDER"),
            track("Product Viewed", 2, product_id="MUG"),
            track("Product Viewed", 3, product_id="HOLDER"),
            track("Product Added", 4, product_id="HOLDER", quantity=2),
            track("Product Added", 5, product_id="MUG"),
            track("Product Removed", 6, product_id="MUG"),
            track(
                "Order Completed",
                8,
                order_id="web-1",
                revenue=5.10,
                currency="GBP",
                products=[{"product_id": "HOLDER", "quantity": 2, "price": 2.55}],
            ),
            track("Product Viewed", 60, product_id="MUG"),  # 52 minutes later: a new session
        ],
        drain,
    )
    profile = Profile.objects.get(key="a:anon-1")
    assert (profile.page_views, profile.product_views, profile.adds, profile.removes, profile.orders) == (1, 4, 2, 1, 1)
    assert profile.revenue == Decimal("5.10")
    assert (profile.last_order_id, profile.last_order_at) == ("web-1", START + timedelta(minutes=8))
    assert profile.recently_viewed == ["MUG", "HOLDER"]
    assert profile.cart == {}  # added 2 holders and a mug, removed the mug, ordered the holders
    assert profile.sessions == 2
    assert (profile.first_seen_at, profile.last_seen_at) == (START, START + timedelta(minutes=60))
    assert set(profile.category_affinity) == {"Home Decor > Candles & Holders", "Kitchen & Dining > Mugs & Cups"}
    holder_score = profile.category_affinity["Home Decor > Candles & Holders"][0]
    mug_score = profile.category_affinity["Kitchen & Dining > Mugs & Cups"][0]
    assert holder_score > mug_score  # two views, an add and an order against two views and an add
    assert set(profile.brand_affinity) == {"Lumo", "Falcon"}
    sessions = list(Event.objects.order_by("timestamp").values_list("session_id", flat=True))
    assert len(set(sessions[:8])) == 1
    assert sessions[8] != sessions[0]
    order = Order.objects.get(order_id="web-1")
    assert (order.origin, order.status, order.anonymous_id, order.revenue, order.message_id != "") == (
        "event",
        "completed",
        "anon-1",
        Decimal("5.10"),
        True,
    )
    assert list(order.lines.values_list("sku", "quantity", "unit_price", "product__sku")) == [
        ("HOLDER", 2, Decimal("2.55"), "HOLDER")
    ]


@pytest.mark.usefixtures("catalog")
def test_identify_links_and_merges_the_anonymous_profile(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    send(
        client,
        source_keys,
        [track("Product Viewed", 0, product_id="HOLDER"), track("Product Added", 1, product_id="HOLDER")],
        drain,
    )
    send(
        client,
        source_keys,
        [
            {
                "type": "identify",
                "anonymousId": "anon-1",
                "userId": "user-9",
                "timestamp": at(2),
                "traits": {"email": "nine@example.com", "address": {"country": "fr"}},
            },
            track("Product Viewed", 3, product_id="MUG"),  # still anonymous in the browser: goes to user-9 now
        ],
        drain,
    )
    person = Profile.objects.get(key="u:user-9")
    assert (person.product_views, person.adds) == (2, 1)
    assert person.cart == {"HOLDER": 1}
    assert person.recently_viewed == ["MUG", "HOLDER"]
    assert person.traits == {"email": "nine@example.com", "address": {"country": "fr"}}
    assert Profile.objects.get(key="a:anon-1").merged_into == person
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id", "source")) == [
        ("anon-1", "user-9", "identify")
    ]
    assert Customer.objects.get(user_id="user-9").country == "FR"


def test_alias_links_a_previous_id(client: Client, source_keys: SourceKeys, drain: Callable[[], int]) -> None:
    send(
        client,
        source_keys,
        [
            track("Signed Up", 0, anonymous_id="old-id"),
            {"type": "alias", "previousId": "old-id", "userId": "user-3", "timestamp": at(1)},
        ],
        drain,
    )
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id")) == [("old-id", "user-3")]
    assert Profile.objects.get(key="a:old-id").merged_into == Profile.objects.get(key="u:user-3")


@pytest.mark.usefixtures("catalog")
def test_orders_from_events_meet_the_imported_history(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    from tracking.services import OrderIn, OrderLineIn, order_bulk_record

    order_bulk_record(
        orders=[
            OrderIn(
                order_id="536365",
                placed_at=START,
                user_id="17850",
                lines=[OrderLineIn("HOLDER", "Holder", 6, Decimal("2.55"))],
            )
        ],
        origin="import",
    )
    order = {
        "order_id": "536365",
        "products": [{"product_id": "HOLDER", "quantity": 6, "price": 2.55}],
        "revenue": 15.3,
    }
    send(
        client,
        source_keys,
        [{"type": "track", "event": "Order Completed", "userId": "17850", "timestamp": at(0), "properties": order}],
        drain,
    )
    assert Order.objects.filter(order_id="536365").count() == 1  # the same order, not a second one
    assert Order.objects.get(order_id="536365").origin == "import"
    send(
        client,
        source_keys,
        [
            {
                "type": "track",
                "event": "Order Cancelled",
                "userId": "17850",
                "timestamp": at(5),
                "properties": {"order_id": "536365"},
            }
        ],
        drain,
    )
    assert Order.objects.get(order_id="536365").status == "cancelled"
    assert Profile.objects.get(key="u:17850").cancellations == 1


def test_processing_the_same_batch_again_changes_nothing(source_keys: SourceKeys) -> None:
    event = {
        "messageId": "x-1", "type": "track", "event": "Product Added", "name": "", "userId": "",
        "anonymousId": "anon-7", "groupId": "", "previousId": "", "timestamp": START.isoformat(),
        "receivedAt": START.isoformat(), "sentAt": None, "originalTimestamp": None,
        "properties": {"product_id": "P", "quantity": 2}, "traits": {}, "context": {},
    }  # fmt: skip
    batch = {
        "id": "batch-1",
        "source": source_keys.source.pk,
        "received_at": START.isoformat(),
        "events": [event],
        "dropped": {"bot": 1},
        "rejected": 0,
    }
    first = batches_process([batch])
    snapshot = list(Profile.objects.values_list("key", "adds", "cart", "sessions"))
    second = batches_process([batch])  # the same batch again: a consumer died before acknowledging
    third = batches_process([{**batch, "id": "batch-2", "dropped": {}}])  # the same event resent by the client
    assert (first.stored, first.duplicates) == (1, 0)
    assert (second.stored, second.duplicates) == (0, 0)
    assert (third.stored, third.duplicates) == (0, 1)
    assert list(Profile.objects.values_list("key", "adds", "cart", "sessions")) == snapshot
    assert snapshot == [("a:anon-7", 1, {"P": 2}, 1)]
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 1, "duplicate": 1, "bot": 1}
