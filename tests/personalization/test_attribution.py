"""Attribution: clicks with a rec_id, and the adds to cart and orders that follow within the window."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from consent.services import consent_record
from consent.subjects import Subject
from personalization.models import Exposure, ExposureOutcome
from personalization.services.exposures import outcomes_record
from tests.factories import ProductFactory
from tracking.services import source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
SHOWN = datetime(2026, 11, 20, 10, tzinfo=UTC)
REC = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def shop(commit: Callable[..., Any]) -> dict[str, Any]:
    for sku in ("A", "B", "C"):
        ProductFactory.create(sku=sku)
    for visitor in ("v1", "v2"):
        commit(
            lambda visitor=visitor: consent_record(
                subject=Subject(anonymous_id=visitor), choices={"analytics": True}, source="banner"
            )
        )
    Exposure.objects.create(
        rec_id=REC,
        placement="home",
        strategy="personalized",
        personalized=True,
        anonymous_id="v1",
        items=[{"sku": "A", "position": 1, "propensity": None}, {"sku": "B", "position": 2, "propensity": None}],
        shown_at=SHOWN,
    )
    return {"writeKey": source_create(name="Web").write_key}


def send(client: Client, shop: dict[str, Any], drain: Callable[[], int], *events: dict[str, Any]) -> None:
    batch = [{"type": "track", "messageId": uuid.uuid4().hex, **event} for event in events]
    response = client.post("/v1/batch", {"batch": batch, "writeKey": shop["writeKey"]}, content_type="application/json")
    assert response.json()["accepted"] == len(events), response.content
    drain()


def at(minutes: float) -> str:
    return (SHOWN + timedelta(minutes=minutes)).isoformat()


def outcomes() -> list[tuple[str, str, int | None, int, str]]:
    return sorted(
        (o.kind, o.sku, o.position, o.quantity, str(o.revenue)) for o in ExposureOutcome.objects.filter(exposure_id=REC)
    )


def test_a_click_with_the_rec_id_then_the_add_and_the_order_are_attributed(client, shop, drain) -> None:
    send(
        client, shop, drain,
        {"event": "Product List Viewed", "anonymousId": "v1", "timestamp": at(0), "properties": {"rec_id": str(REC)}},
        {"event": "Product Clicked", "anonymousId": "v1", "timestamp": at(1),
         "properties": {"rec_id": str(REC), "product_id": "B", "position": 2}},
        {"event": "Product Added", "anonymousId": "v1", "timestamp": at(3),
         "properties": {"product_id": "B", "quantity": 2, "price": 9.99}},
        {"event": "Order Completed", "anonymousId": "v1", "timestamp": at(30), "properties": {
            "order_id": "o-1",
            "products": [
                {"product_id": "B", "quantity": 2, "price": 9.99},
                {"product_id": "C", "quantity": 1, "price": 5},
            ],
        }},
    )  # fmt: skip
    assert outcomes() == [
        ("add", "B", 2, 2, "0.00"),
        ("click", "B", 2, 0, "0.00"),
        ("impression", "", None, 0, "0.00"),
        ("order", "B", 2, 2, "19.98"),  # C was bought too, but never clicked in a recommendation
    ]


def test_without_a_click_carrying_the_rec_id_nothing_is_attributed(client, shop, drain) -> None:
    send(
        client, shop, drain,
        {"event": "Product Clicked", "anonymousId": "v1", "timestamp": at(1), "properties": {"product_id": "A"}},
        {"event": "Product Added", "anonymousId": "v1", "timestamp": at(2), "properties": {"product_id": "A"}},
        {"event": "Order Completed", "anonymousId": "v1", "timestamp": at(5), "properties": {
            "order_id": "o-2", "products": [{"product_id": "A", "quantity": 1, "price": 3}]}},
        {"event": "Product Clicked", "anonymousId": "v1", "timestamp": at(1),
         "properties": {"rec_id": str(uuid.uuid4()), "product_id": "A"}},  # an exposure never logged
    )  # fmt: skip
    assert outcomes() == []


def test_only_inside_the_window_and_only_for_the_same_visitor(client, shop, drain, settings) -> None:
    settings.PZ_ATTRIBUTION_HOURS = 24
    send(
        client, shop, drain,
        {"event": "Product Clicked", "anonymousId": "v1", "timestamp": at(0),
         "properties": {"rec_id": str(REC), "product_id": "A", "position": 1}},
        {"event": "Product Added", "anonymousId": "v2", "timestamp": at(5), "properties": {"product_id": "A"}},
        {"event": "Order Completed", "anonymousId": "v1", "timestamp": at(25 * 60), "properties": {
            "order_id": "o-3", "products": [{"product_id": "A", "quantity": 1, "price": 3}]}},
    )  # fmt: skip
    assert outcomes() == [("click", "A", 1, 0, "0.00")]  # v2 never clicked; the order came after 25 hours
    send(
        client, shop, drain,
        {"event": "Order Completed", "anonymousId": "v1", "timestamp": at(23 * 60), "properties": {
            "order_id": "o-4", "products": [{"product_id": "A", "quantity": 3, "price": 2}]}},
    )  # fmt: skip
    assert ("order", "A", 1, 3, "6.00") in outcomes()


def test_outcomes_count_once_whatever_is_replayed(client, shop, drain) -> None:
    click = {"event": "Product Clicked", "anonymousId": "v1", "timestamp": at(1), "messageId": "click-once",
             "properties": {"rec_id": str(REC), "product_id": "A", "position": 1}}  # fmt: skip
    send(client, shop, drain, click)
    send(client, shop, drain, click)
    assert outcomes() == [("click", "A", 1, 0, "0.00")]


def test_nobody_but_the_api_can_log_an_exposure(client, shop, drain) -> None:
    forged = uuid.uuid4()
    send(
        client, shop, drain,
        {"event": "Recommendations Served", "anonymousId": "v2", "timestamp": at(0),
         "properties": {"rec_id": str(forged), "placement": "home", "products": []},
         "context": {"pz": {"internal": "exposure"}}},
    )  # fmt: skip
    assert not Exposure.objects.filter(rec_id=forged).exists()


def test_an_exposure_is_stored_once_with_every_field(shop) -> None:
    """The insert the consumer makes for every answer of the API (one statement on PostgreSQL)."""
    first, second = uuid.uuid4(), uuid.uuid4()
    served: dict[str, Any] = {
        "type": "track", "event": "Recommendations Served", "userId": "u1", "anonymousId": "v9",
        "timestamp": "2026-11-30T06:00:00.250000+00:00", "context": {"pz": {"internal": "exposure"}},
        "properties": {
            "rec_id": str(first), "placement": "home", "campaign_id": None, "campaign_version": None,
            "strategy": "personalized", "personalized": True, "note": "",
            "products": [{"product_id": "A", "position": 1, "propensity": 0.25}, {"product_id": "B", "position": 2}],
        },
    }  # fmt: skip
    again = {**served, "properties": {**served["properties"], "placement": "cart", "products": []}}
    other = {**served, "anonymousId": "", "properties": {**served["properties"], "rec_id": str(second)}}
    outcomes_record([served, other])
    outcomes_record([again])  # the same rec_id again (a replay): the first stays
    stored = Exposure.objects.get(rec_id=first)
    assert (stored.placement, stored.campaign_id, stored.campaign_version, stored.strategy) == (
        "home", None, None, "personalized",
    )  # fmt: skip
    assert (stored.personalized, stored.note, stored.user_id, stored.anonymous_id) == (True, "", "u1", "v9")
    assert stored.items == [
        {"sku": "A", "position": 1, "propensity": 0.25},
        {"sku": "B", "position": 2, "propensity": None},
    ]
    assert stored.shown_at == datetime(2026, 11, 30, 6, 0, 0, 250000, tzinfo=UTC)
    assert Exposure.objects.get(rec_id=second).anonymous_id == ""
    assert Exposure.objects.filter(rec_id__in=[first, second]).count() == 2
