"""Whatever the collector answers 200 for, the consumer stores; what it cannot store, the collector
refuses per event with the field and the reason, and the event's neighbours are stored."""

import base64
import http.client
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.models import Purpose
from consent.services import refresh_policy_cache
from tests.conftest import CONFIGURATION_VARIABLES, ROOT
from tests.outages import RedisServer, free_port, wait_until
from tracking.models import Event
from tracking.services import SourceKeys

pytestmark = pytest.mark.django_db

GOOD_NEIGHBOUR = {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "good"}


@pytest.fixture(autouse=True)
def analytics_allowed() -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def viewed(**extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "Product Viewed", "anonymousId": "anon-2", "messageId": "odd"}
    event["properties"] = {"product_id": "85123A", "price": 2.55}
    event.update(extra)
    return event


def order(*products: dict[str, Any], **extra: Any) -> dict[str, Any]:
    properties = {"order_id": "o-1", "products": list(products), **extra}
    return {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": "odd", "properties": properties}


# Each: an event the old collector answered 200 for and the consumer could not store (or a 500).
ODD_EVENTS: dict[str, tuple[str, dict[str, Any] | bytes]] = {
    "naive timestamp": ("", viewed(timestamp="2024-01-01T00:00:00")),
    "naive sentAt": ("", viewed(timestamp="2024-01-01T00:00:00Z", sentAt="2024-01-01T00:00:05")),
    "naive originalTimestamp": ("", viewed(originalTimestamp="2024-01-01T00:00:00", sentAt="2024-01-01T00:00:05Z")),
    "year 1": ("timestamp", viewed(timestamp="0001-01-01T00:00:00Z")),
    "year 9999": ("timestamp", viewed(timestamp="9999-12-31T23:59:59Z")),
    "skew underflow": ("sentAt", viewed(originalTimestamp="1970-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z")),
    "skew overflow": (
        "originalTimestamp",
        viewed(originalTimestamp="9999-12-31T00:00:00Z", sentAt="0001-01-02T00:00:00Z"),
    ),
    "NUL in a value": ("properties.note", viewed(properties={"product_id": "a", "note": "x\u0000y"})),
    "NUL in a key": ("context.k\u0000", viewed(context={"k\u0000": 1})),
    "NUL in the name": ("event", viewed(event="Signed\u0000Up")),
    "huge price": ("properties.price", viewed(properties={"product_id": "a", "price": 10**30})),
    "skew before 1970": ("", viewed(originalTimestamp="1970-01-01T00:00:00Z", sentAt="2099-01-01T00:00:00Z")),
    "naive with a fraction": ("", viewed(timestamp="2024-01-01T00:00:00.5")),
    "huge anonymousId": ("anonymousId", viewed(anonymousId=10**200)),
    "long anonymousId": ("anonymousId", viewed(anonymousId="a" * 129)),
    "huge messageId": ("messageId", viewed(messageId="m" * 101)),
    "nested 1,000 deep": ("event", viewed(properties={"product_id": "a", "x": json.loads("[" * 900 + "]" * 900)})),
    "nested 65 deep": ("event", viewed(properties={"product_id": "a", "x": json.loads("[" * 63 + "]" * 63)})),
    "nested 64 deep": ("", viewed(properties={"product_id": "a", "x": json.loads("[" * 62 + "]" * 62)})),
    "invalid UTF-8": ("event", b'{"type": "page", "anonymousId": "a", "name": "\xff\xfe"}'),
    "huge order price": ("properties.products.0.price", order({"sku": "a", "price": 1e15})),
    "huge order total": ("properties.products", order({"sku": "a", "price": 9_999_999, "quantity": 1_000_000})),
    "huge product_id": ("properties.product_id", viewed(properties={"product_id": 10**70})),
    "huge order_id": ("properties.order_id", order({"sku": "a"}, order_id=10**120)),
    "huge sku in an order": ("properties.products.0.sku", order({"sku": 10**80})),
    "clamped with flags of its own": ("", viewed(timestamp="2099-01-01T00:00:00Z", context={"pz": {"flags": 5}})),
    "blank anonymousId": ("anonymousId", viewed(anonymousId=" ")),
    "blank userId": ("userId", viewed(userId="\t", anonymousId=None)),
    "blank userId beside an anonymousId": ("", viewed(userId=" ")),
    "huge position": ("", viewed(properties={"product_id": "a", "position": 10**40})),
    "huge int elsewhere": ("", viewed(properties={"product_id": "a", "count": 10**40})),
}


def odd_batch(event: dict[str, Any] | bytes) -> bytes:
    odd = json.dumps(event).encode() if isinstance(event, dict) else event
    return b'{"batch": [' + json.dumps(GOOD_NEIGHBOUR).encode() + b", " + odd + b"]}"


@pytest.mark.parametrize("case", ODD_EVENTS)
def test_an_odd_event_is_refused_with_its_field_or_stored(
    case: str, client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    field, event = ODD_EVENTS[case]
    response = client.post(
        "/v1/batch", odd_batch(event), content_type="application/json", HTTP_AUTHORIZATION=basic(source_keys.write_key)
    )
    assert response.status_code == 200
    body = response.json()
    drain()
    if field:
        assert body["accepted"] == 1
        message_id = event.get("messageId") if isinstance(event, dict) else None
        assert [(r["index"], r["messageId"], r["field"]) for r in body["rejected"]] == [(1, message_id, field)]
        assert sorted(Event.objects.values_list("message_id", flat=True)) == ["good"]
    else:
        assert body == {"success": True, "accepted": 2, "dropped": {}, "rejected": []}
        assert sorted(Event.objects.values_list("message_id", flat=True)) == ["good", "odd"]
        stored = Event.objects.get(message_id="odd")
        assert stored.timestamp.utcoffset() is not None


# Bodies the JSON decoder refuses whole: a lone surrogate (msgspec reads it as malformed JSON) or
# nesting deeper than it goes. Nothing of them is stored; the SDK gets a 400 it will not retry.
MALFORMED_BODIES = {
    "lone surrogate": b'{"batch": [{"type": "page", "anonymousId": "a", "name": "\\ud800"}]}',
    "surrogate in a key": b'{"batch": [{"type": "page", "anonymousId": "a", "properties": {"\\udc80": 1}}]}',
    "nested 1,000 deep": b'{"batch": [{"type": "page", "anonymousId": "a", "properties": {"x": '
    + b"[" * 1000
    + b"]" * 1000
    + b"}}]}",
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "invalid UTF-8 in the batch's context": b'{"batch": [], "context": {"a": "\xff"}}',
}


@pytest.mark.parametrize("case", MALFORMED_BODIES)
@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track"])
def test_a_malformed_body_is_a_400_naming_the_body(
    case: str, path: str, client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    response = client.post(
        path, MALFORMED_BODIES[case], content_type="application/json", HTTP_AUTHORIZATION=basic(source_keys.write_key)
    )
    assert response.status_code == 400
    assert {k: v for k, v in response.json().items() if k != "detail"} == {
        "success": False,
        "code": "invalid_json",
        "fields": {"body": ["not valid"]},
    }
    drain()
    assert Event.objects.count() == 0


def test_every_4xx_says_success_false_and_names_the_field(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": basic(source_keys.write_key)}
    answers = {
        "list on track": client.post("/v1/track", "[1, 2]", content_type="application/json", **auth),
        "no key": client.post("/v1/track", json.dumps(viewed()), content_type="application/json"),
        "wrong key": client.post("/v1/track", json.dumps(viewed()), content_type="application/json",
                                 HTTP_AUTHORIZATION=basic("nope")),
        "bad batch": client.post("/v1/batch", json.dumps({"batch": [{"type": "track"}]}),
                                 content_type="application/json", **auth),
        "NUL in the batch's context": client.post(
            "/v1/batch", json.dumps({"batch": [viewed()], "context": {"page": {"title": "a\u0000"}}}),
            content_type="application/json", **auth,
        ),
        "too large": client.post("/v1/batch", b" " * 600_000, content_type="application/json", **auth),
    }  # fmt: skip
    assert {
        case: (answer.status_code, answer.json()["success"], answer.json()["fields"])
        for case, answer in answers.items()
    } == {
        "list on track": (400, False, {"event": ["must be a JSON object"]}),
        "no key": (401, False, {"writeKey": ["is required"]}),
        "wrong key": (401, False, {"writeKey": ["unknown or revoked"]}),
        "bad batch": (400, False, {"batch.0.userId": ["every event needs a userId or an anonymousId"]}),
        "NUL in the batch's context": (400, False, {"context": ["contains a NUL character (\\u0000)"]}),
        "too large": (413, False, {"body": ["over 500 KB"]}),
    }
    drain()
    assert Event.objects.count() == 0


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
times = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat),
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.text(max_size=30),
)
ids = st.one_of(st.text(max_size=140), st.integers(min_value=-(10**30), max_value=10**30))
context_keys = st.sampled_from(["pz", "consent", "ip", "userAgent", "page"]) | st.text(max_size=8)
event_names = st.sampled_from(["Product Viewed", "Product Added", "Order Completed", "Cart Viewed", "Signed Up"])
product = st.fixed_dictionaries(
    {"product_id": ids}, optional={"price": json_scalars, "quantity": json_scalars, "category": json_values}
)
properties = st.fixed_dictionaries(
    {}, optional={"product_id": ids, "price": json_scalars, "order_id": ids, "products": st.lists(product, max_size=3)}
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(lambda more: {**more, **known})
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify", "page", "alias"]), "anonymousId": ids},
    optional={
        "event": event_names, "userId": ids, "previousId": ids, "timestamp": times, "sentAt": times,
        "originalTimestamp": times, "properties": properties,
        "traits": st.dictionaries(st.text(max_size=8), json_values),
        "context": st.dictionaries(context_keys, json_values | st.fixed_dictionaries({}, optional={
            "flags": json_values, "internal": json_values, "categoryPreferences": json_values}), max_size=3),
    },
)  # fmt: skip


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=events)
def test_any_event_is_refused_with_a_field_or_stored(
    event: dict[str, Any], client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    event["messageId"] = message_id = f"m-{uuid.uuid4()}"
    good = {**GOOD_NEIGHBOUR, "messageId": f"good-{uuid.uuid4()}"}
    response = client.post(
        "/v1/batch",
        json.dumps({"batch": [good, event]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
    )
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    drain()
    stored = set(
        Event.objects.filter(message_id__in=[good["messageId"], message_id]).values_list("message_id", flat=True)
    )
    if rejected:
        assert [(r["index"], r["messageId"]) for r in rejected] == [(1, message_id)]
        assert rejected[0]["field"]
        assert stored == {good["messageId"]}
    else:
        assert stored == {good["messageId"], message_id}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_chunked_body_without_content_length_is_read_to_its_end(
    private_redis: RedisServer, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    """Through granian, as in production: the body comes in chunks, with no Content-Length."""
    database = connections["default"].settings_dict
    environment = {
        **{name: value for name, value in os.environ.items() if name not in CONFIGURATION_VARIABLES},
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": private_redis.url,
        "PZ_DEMO_SHOP": "0",
    }
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
         "config.wsgi:application"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), timeout=60)
        body = json.dumps({"batch": [GOOD_NEIGHBOUR, viewed()]}).encode()
        chunks = [body[:10], body[10:100], body[100:]]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json", "Authorization": basic(source_keys.write_key)}
        connection.request("POST", "/v1/batch", body=iter(chunks), headers=headers, encode_chunked=True)
        answer = connection.getresponse()
        content = answer.read()
        assert answer.status == 200, content
        assert json.loads(content) == {"success": True, "accepted": 2, "dropped": {}, "rejected": []}
    finally:
        server.terminate()
        server.wait(timeout=30)
    drain()
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["good", "odd"]


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True
