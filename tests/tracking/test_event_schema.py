"""Validation and the timestamp formula, with generated inputs: nothing crashes the collector."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracking.event_schema import InvalidEvent, product_key, validate_event
from tracking.event_time import FUTURE_TOLERANCE, corrected_timestamp
from tracking.services import SourceKeys

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELDS = [
    "type",
    "event",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "sentAt",
    "properties",
    "context",
    "traits",
]
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "page", "identify", "alias", "group", "screen", "t", "x", 3]),
        "event": st.sampled_from(["Product Viewed", "Order Completed", "Product Added", "Custom"]) | json_values,
        "userId": st.text(max_size=140) | st.integers() | json_values,
        "anonymousId": st.text(max_size=140) | json_values,
        "messageId": st.text(max_size=120) | json_values,
        "timestamp": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat) | json_values,
        "properties": st.dictionaries(
            st.sampled_from(["product_id", "price", "quantity", "order_id", "products"]), json_values
        )
        | json_values,
        "context": json_values,
    },
)


@given(st.one_of(json_values, event_like))
def test_validation_either_accepts_or_names_the_field(raw: Any) -> None:
    error: InvalidEvent | None = None
    try:
        event = validate_event(raw)
    except InvalidEvent as exc:
        error = exc
    if error is not None:
        assert error.field
        assert error.reason
        return
    assert event.userId is not None or event.anonymousId is not None
    assert event.messageId and len(event.messageId) <= 100
    if event.type == "track":
        assert event.event


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (
            {"type": "track", "event": "Order Completed", "userId": "u", "properties": {"products": []}},
            "properties.order_id",
            "is required",
        ),
        (
            {
                "type": "track",
                "event": "Product Added",
                "userId": "u",
                "properties": {"product_id": "a", "quantity": 0},
            },
            "properties.quantity",
            "Expected `int` >= 1",
        ),
        (
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "u",
                "properties": {"order_id": 1, "currency": "pounds"},
            },
            "properties.currency",
            "Expected `str` matching regex '^[A-Za-z]{3}$'",
        ),
        ({"type": "alias", "userId": "u"}, "previousId", "an alias call needs a previousId and a userId"),
        ({"type": "group", "userId": "u"}, "groupId", "a group call needs a groupId"),
        ({"type": "page", "anonymousId": "a", "messageId": ""}, "messageId", "Expected `str` of length >= 1"),
        ({"type": "page", "anonymousId": "a" * 129}, "anonymousId", "Expected `str` of length <= 128"),
    ],
)
def test_e_commerce_and_spec_checks(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as error:
        validate_event(raw)
    assert (error.value.field, error.value.reason) == (field, reason)


def test_a_message_id_is_assigned_when_absent_and_numbers_are_ids() -> None:
    event = validate_event({"type": "track", "event": "X", "userId": 17850})
    assert event.messageId is not None and event.messageId.startswith("pz-")
    assert event.userId == 17850
    assert product_key({"product_id": 85123, "sku": "X"}) == "85123"
    assert product_key({"product_id": "", "sku": "X"}) == "X"


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(received=moments, happened=moments, delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
def test_the_skew_formula(received: datetime, happened: datetime, delay: timedelta) -> None:
    sent = happened + delay  # the client's own clock, whatever its skew
    result, clamped = corrected_timestamp(received_at=received, timestamp=happened, sent_at=sent)
    expected = received - (sent - happened)
    assert (result, clamped) == (expected, False)  # never in the future: delay >= 0


@given(received=moments, happened=moments)
def test_never_more_than_the_tolerance_in_the_future(received: datetime, happened: datetime) -> None:
    result, clamped = corrected_timestamp(received_at=received, timestamp=happened, sent_at=None)
    assert result <= received + FUTURE_TOLERANCE
    assert clamped == (happened > received + FUTURE_TOLERANCE)
    assert result == (received if clamped else happened)
    assert corrected_timestamp(received_at=received, timestamp=None, sent_at=None) == (received, False)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        json_values, st.fixed_dictionaries({"batch": st.lists(st.one_of(json_values, event_like), max_size=5)})
    ),
    path=st.sampled_from(["batch", "track", "page", "identify", "t", "import"]),
)
def test_no_generated_body_makes_the_collector_fail(
    client: Client, source_keys: SourceKeys, body: Any, path: str
) -> None:
    payload = {**body, "writeKey": source_keys.write_key} if isinstance(body, dict) else body
    response = client.post(f"/v1/{path}", json.dumps(payload), content_type="text/plain")
    assert response.status_code in {200, 400, 401}
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_no_byte_string_makes_the_collector_fail(client: Client, source_keys: SourceKeys, raw: bytes) -> None:
    response = client.post(
        "/v1/batch",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"{source_keys.write_key}:".encode()).decode(),
    )
    assert response.status_code in {200, 400}
