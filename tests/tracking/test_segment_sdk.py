"""The official Segment Python library, pointed at the collector, just works."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pytest_django.live_server_helper import LiveServer
from segment.analytics.client import Client as SegmentClient

from consent.models import Purpose
from consent.services import refresh_policy_cache
from tracking.models import Event
from tracking.services import source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.mark.parametrize("gzip", [False, True])
def test_events_sent_with_segment_analytics_python_are_stored_exactly_once(
    live_server: LiveServer, drain: Callable[[], int], gzip: bool
) -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()
    keys = source_create(name="Backend")
    errors: list[Exception] = []
    # A shop's server configures its SDK with the secret key: its user ids are taken at its word.
    sdk = SegmentClient(
        keys.secret_key, host=live_server.url, sync_mode=True, gzip=gzip, on_error=lambda e, _: errors.append(e)
    )
    when = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sdk.identify("user-42", {"email": "forty-two@example.com"}, timestamp=when, message_id="sdk-1")
    sdk.track("user-42", "Product Viewed", {"product_id": "85123A", "price": 2.55}, timestamp=when, message_id="sdk-2")
    sdk.page("user-42", "Shop", "Home", {"url": "https://shop.example.com/"}, timestamp=when, message_id="sdk-3")
    sdk.track(
        "user-42",
        "Order Completed",
        {
            "order_id": "sdk-order-1",
            "revenue": 5.1,
            "products": [{"product_id": "85123A", "quantity": 2, "price": 2.55}],
        },
        timestamp=when,
        message_id="sdk-4",
    )
    sdk.track("user-42", "Product Viewed", {"product_id": "85123A"}, timestamp=when, message_id="sdk-2")  # a resend
    sdk.flush()
    drain()
    assert errors == []
    stored = list(Event.objects.order_by("message_id").values_list("message_id", "type", "event", "user_id"))
    assert stored == [
        ("sdk-1", "identify", "", "user-42"),
        ("sdk-2", "track", "Product Viewed", "user-42"),
        ("sdk-3", "page", "", "user-42"),
        ("sdk-4", "track", "Order Completed", "user-42"),
    ]
    # The library sends sentAt, so the time is corrected by the request's transit delay (Segment's formula).
    for timestamp in Event.objects.values_list("timestamp", flat=True):
        assert timedelta(0) <= timestamp - when < timedelta(seconds=5)
    assert Event.objects.get(message_id="sdk-2").context["library"]["name"] == "analytics-python"
