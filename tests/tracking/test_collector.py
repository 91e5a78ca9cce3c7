"""The collector speaks Segment's HTTP Tracking API; in both configurations a 200 means stored."""

import base64
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from consent.models import Purpose
from consent.services import consent_record, refresh_policy_cache, subject_erase
from consent.subjects import Subject
from tracking.models import Event, IngestCount
from tracking.services import SourceKeys

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def analytics_allowed() -> None:
    """Analytics on by default (opt-out everywhere), so these tests are about the pipeline."""
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def post(client: Client, path: str, body: object, **headers: Any) -> Any:
    return client.post(path, json.dumps(body), content_type=headers.pop("content_type", "application/json"), **headers)


def view(message_id: str, anonymous_id: str = "anon-1", **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": message_id,
        "anonymousId": anonymous_id,
        "properties": {"product_id": "85123A", "price": 2.55},
    }
    event.update(extra)
    return event


def counts() -> dict[str, int]:
    return dict(IngestCount.objects.values_list("outcome", "count"))


@pytest.mark.usefixtures("analytics_allowed")
def test_a_batch_stores_good_events_and_reports_each_bad_one(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    batch = [
        view("m-1"),
        {"type": "track", "messageId": "m-2", "anonymousId": "anon-1"},  # no event name
        view("m-3", properties={"price": -1}),
        {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "m-4"},
        "not an event",
        {"type": "identify", "messageId": "m-6", "traits": {"email": "x@example.com"}},  # no id
    ]
    response = post(client, "/v1/batch", {"batch": batch, "writeKey": source_keys.write_key})
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 2,
        "dropped": {},
        "rejected": [
            {"index": 1, "messageId": "m-2", "field": "event", "reason": "a track call needs the name of the event"},
            {"index": 2, "messageId": "m-3", "field": "properties.price", "reason": "Expected `float` >= 0.0"},
            {"index": 4, "messageId": None, "field": "event", "reason": "must be a JSON object"},
            {
                "index": 5,
                "messageId": "m-6",
                "field": "userId",
                "reason": "every event needs a userId or an anonymousId",
            },
        ],
    }
    drain()
    assert sorted(Event.objects.values_list("message_id", "type")) == [("m-1", "track"), ("m-4", "page")]
    assert counts() == {"stored": 2, "rejected": 4}


@pytest.mark.usefixtures("analytics_allowed")
def test_a_resent_event_is_stored_once(client: Client, source_keys: SourceKeys, drain: Callable[[], int]) -> None:
    auth = {"HTTP_AUTHORIZATION": basic(source_keys.write_key)}
    post(client, "/v1/batch", {"batch": [view("dup-1"), view("dup-1"), view("dup-2")]}, **auth)
    post(client, "/v1/track", view("dup-1"), **auth)
    drain()
    post(client, "/v1/batch", {"batch": [view("dup-2"), view("dup-3")]}, **auth)
    drain()
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["dup-1", "dup-2", "dup-3"]
    assert counts() == {"stored": 3, "duplicate": 3}


@pytest.mark.usefixtures("analytics_allowed")
def test_single_event_paths_and_letters(client: Client, source_keys: SourceKeys, drain: Callable[[], int]) -> None:
    auth = {"HTTP_AUTHORIZATION": basic(source_keys.write_key)}
    post(client, "/v1/page", {"anonymousId": "a", "name": "Home", "messageId": "p1"}, **auth)
    post(client, "/v1/p", {"anonymousId": "a", "name": "Cart", "messageId": "p2"}, **auth)
    post(
        client,
        "/v1/identify",
        {"anonymousId": "a", "userId": "u-1", "traits": {"email": "a@example.com"}, "messageId": "i1"},
        **auth,
    )
    post(client, "/v1/t", {"anonymousId": "a", "event": "Signed Up", "messageId": "t1"}, **auth)
    post(client, "/v1/b", {"batch": [{"type": "t", "anonymousId": "a", "event": "X", "messageId": "t2"}]}, **auth)
    server = {"HTTP_AUTHORIZATION": basic(source_keys.secret_key)}  # vouches for a user id alone
    post(client, "/v1/group", {"userId": "u-1", "groupId": "acme", "messageId": "g1"}, **server)
    post(client, "/v1/alias", {"userId": "u-1", "previousId": "old-anon", "messageId": "a1"}, **server)
    drain()
    assert sorted(Event.objects.values_list("message_id", "type", "name", "event")) == [
        ("a1", "alias", "", ""),
        ("g1", "group", "", ""),
        ("i1", "identify", "", ""),
        ("p1", "page", "Home", ""),
        ("p2", "page", "Cart", ""),
        ("t1", "track", "", "Signed Up"),
        ("t2", "track", "", "X"),
    ]
    assert client.post("/v1/nothing", "{}", content_type="application/json").status_code == 404


@pytest.mark.usefixtures("analytics_allowed")
def test_text_plain_gzip_and_write_key_in_the_body(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    body = json.dumps({"batch": [view("g-1")], "writeKey": source_keys.write_key}).encode()
    response = client.post("/v1/batch", gzip.compress(body), content_type="text/plain", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    drain()
    assert Event.objects.filter(message_id="g-1").count() == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b"\x1f\x8b garbage", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_gzip"),
        (json.dumps({"batch": "x"}).encode(), {}, 400, "invalid"),
        (json.dumps({"batch": [{}] * 2501}).encode(), {}, 400, "too_many_events"),
        (b"[" + b" " * 512_000 + b"]", {}, 413, "request_too_large"),
        (
            gzip.compress(json.dumps({"batch": [view("x", pad="y" * 600_000)]}).encode()),
            {"HTTP_CONTENT_ENCODING": "gzip"},
            413,
            "request_too_large",
        ),
    ],
)
def test_whole_request_refusals_are_clear(
    client: Client, source_keys: SourceKeys, body: bytes, headers: dict[str, Any], status: int, code: str
) -> None:
    response = client.post(
        "/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=basic(source_keys.write_key), **headers
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    assert Event.objects.count() == 0


def test_an_event_over_32_kb_is_rejected_alone(
    client: Client, source_keys: SourceKeys, analytics_allowed: None, drain: Callable[[], int]
) -> None:
    big = view("big", properties={"product_id": "x", "notes": "n" * 33_000})
    response = post(
        client, "/v1/batch", {"batch": [big, view("small")]}, HTTP_AUTHORIZATION=basic(source_keys.write_key)
    )
    assert response.json()["rejected"] == [
        {"index": 0, "messageId": "big", "field": "event", "reason": "is over the 32 KB limit for one event"}
    ]
    drain()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["small"]


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, {"batch": []}, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": basic("pzw_unknown")}, {"batch": []}, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Basic !!!"}, {"batch": []}, "authentication_failed"),
        ({}, {"batch": [], "writeKey": "pzw_unknown"}, "authentication_failed"),
    ],
)
def test_bad_auth_refuses_the_request(
    client: Client, source_keys: SourceKeys, headers: dict[str, str], body: object, code: str
) -> None:
    response = post(client, "/v1/batch", body, **headers)
    assert response.status_code == 401
    assert response.json()["code"] == code


@pytest.mark.usefixtures("analytics_allowed")
def test_a_servers_secret_key_is_accepted_as_the_basic_user_name_or_a_bearer(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    basic_answer = post(client, "/v1/track", view("s-1"), HTTP_AUTHORIZATION=basic(source_keys.secret_key))
    bearer_answer = post(client, "/v1/track", view("s-2"), HTTP_AUTHORIZATION=f"Bearer {source_keys.secret_key}")
    wrong = post(client, "/v1/track", view("s-3"), HTTP_AUTHORIZATION=basic("pzs_" + "x" * 43))
    drain()
    assert (basic_answer.status_code, bearer_answer.status_code, wrong.status_code) == (200, 200, 401)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["s-1", "s-2"]


def test_without_analytics_consent_events_are_only_counted(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    consent_record(subject=Subject(anonymous_id="yes"), choices={"analytics": True}, source="banner")
    batch = [
        view("c-1", "no"),  # opt-in by default: no choice, no analytics
        view("c-2", "yes"),
        view("c-3", "no", context={"consent": {"categoryPreferences": {"Analytics": True}}}),  # the shop's own tool
        view("c-4", "yes", context={"consent": {"categoryPreferences": {"Analytics": False}}}),
    ]
    response = post(client, "/v1/batch", {"batch": batch}, HTTP_AUTHORIZATION=basic(source_keys.write_key))
    assert response.json()["dropped"] == {"no_consent": 2}
    drain()
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["c-2", "c-3"]
    assert counts() == {"stored": 2, "no_consent": 2}


def test_an_erased_subject_stores_nothing(
    client: Client, source_keys: SourceKeys, analytics_allowed: None, drain: Callable[[], int]
) -> None:
    subject_erase(subject=Subject(anonymous_id="gone"), requested_via="test")
    response = post(
        client,
        "/v1/batch",
        {"batch": [view("e-1", "gone"), view("e-2", "here")]},
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
    )
    assert response.json()["dropped"] == {"suppressed": 1}
    drain()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["e-2"]


def test_bots_are_dropped_and_counted(
    client: Client, source_keys: SourceKeys, analytics_allowed: None, drain: Callable[[], int]
) -> None:
    auth = {"HTTP_AUTHORIZATION": basic(source_keys.write_key)}
    post(client, "/v1/track", view("b-1"), HTTP_USER_AGENT=GOOGLEBOT, **auth)
    post(client, "/v1/track", view("b-2", context={"userAgent": GOOGLEBOT}), **auth)
    post(client, "/v1/track", view("b-3"), HTTP_USER_AGENT=CHROME, **auth)
    drain()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["b-3"]
    assert counts() == {"stored": 1, "bot": 2}


@pytest.mark.usefixtures("analytics_allowed")
def test_enrichment_corrects_time_truncates_ip_and_parses_the_agent(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    now = timezone.now()
    skewed = view(
        "t-1",
        timestamp=(now - timedelta(hours=3, minutes=1)).isoformat(),
        sentAt=(now - timedelta(hours=3)).isoformat(),  # the client's clock is three hours late
    )
    future = view("t-2", timestamp=(now + timedelta(days=1)).isoformat())
    historical = view("t-3", timestamp="2011-12-09T12:50:00Z")
    post(
        client,
        "/v1/batch",
        {"batch": [skewed, future, historical]},
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
        HTTP_USER_AGENT=CHROME,
        REMOTE_ADDR="203.0.113.77",
    )
    drain()
    events = {e.message_id: e for e in Event.objects.all()}
    assert timedelta(seconds=55) < events["t-1"].received_at - events["t-1"].timestamp < timedelta(seconds=65)
    assert events["t-2"].timestamp == events["t-2"].received_at
    assert events["t-2"].context["pz"]["flags"] == ["timestamp_clamped"]
    assert events["t-3"].timestamp == datetime(2011, 12, 9, 12, 50, tzinfo=UTC)
    assert events["t-1"].context["ip"] == "203.0.113.0"
    assert events["t-1"].context["pz"]["agent"] == {"browser": "Chrome", "os": "Windows", "device": "desktop"}


@pytest.mark.usefixtures("analytics_allowed")
def test_batch_context_and_sent_at_apply_to_every_event(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    body = {
        "batch": [view("bc-1", context={"locale": "fr-FR"}), view("bc-2")],
        "context": {"library": {"name": "analytics-python"}, "locale": "en-GB"},
        "sentAt": timezone.now().isoformat(),
    }
    post(client, "/v1/batch", body, HTTP_AUTHORIZATION=basic(source_keys.write_key))
    drain()
    contexts = dict(Event.objects.values_list("message_id", "context"))
    assert contexts["bc-1"]["locale"] == "fr-FR"  # the event's own context wins
    assert contexts["bc-2"]["locale"] == "en-GB"
    assert contexts["bc-2"]["library"] == {"name": "analytics-python"}
    assert Event.objects.exclude(sent_at=None).count() == 2


@pytest.mark.usefixtures("analytics_allowed")
def test_the_pixel_answers_a_gif(client: Client, source_keys: SourceKeys, drain: Callable[[], int]) -> None:
    data = (
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "writeKey": source_keys.write_key,
                    "anonymousId": "mail-1",
                    "event": "Email Opened",
                    "messageId": "px-1",
                }
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    response = client.get(f"/v1/pixel/track?data={data}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert client.get("/v1/pixel/track?data=garbage")["X-Pz-Event"] == "refused"
    drain()
    assert list(Event.objects.values_list("message_id", "event")) == [("px-1", "Email Opened")]


def test_an_origin_the_source_does_not_list_is_refused_readably_and_nothing_is_stored(
    client: Client, source_keys: SourceKeys, analytics_allowed: None, drain: Callable[[], int]
) -> None:
    source_keys.source.allowed_origins = ["https://shop.example.com"]
    source_keys.source.save()
    auth = {"HTTP_AUTHORIZATION": basic(source_keys.write_key)}
    # A preflight carries no key: it lets the request through, and the request gets the verdict.
    preflight = client.options("/v1/batch", HTTP_ORIGIN="https://evil.example")
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == "https://evil.example"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]

    other = post(client, "/v1/track", view("o-2"), HTTP_ORIGIN="https://evil.example", **auth)
    drain()
    assert other.status_code == 403
    assert other.json()["code"] == "origin_not_allowed" and other.json()["fields"] == {
        "Origin": ["not allowed for this source"]
    }
    assert other["Access-Control-Allow-Origin"] == "https://evil.example"  # the SDK reads it, and stops
    assert Event.objects.count() == 0 and counts() == {}

    allowed = post(client, "/v1/track", view("o-1"), HTTP_ORIGIN="https://shop.example.com", **auth)
    own_page = post(client, "/v1/track", view("o-3"), HTTP_ORIGIN="http://testserver", **auth)
    server = post(client, "/v1/track", view("o-4"), **auth)
    drain()
    assert (allowed.status_code, own_page.status_code, server.status_code) == (200, 200, 200)
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["o-1", "o-3", "o-4"]


def test_a_gpc_header_records_the_opt_out(
    client: Client, source_keys: SourceKeys, analytics_allowed: None, drain: Callable[[], int]
) -> None:
    from consent.models import ConsentRecord

    post(
        client,
        "/v1/track",
        view("gpc-1", "anon-gpc"),
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
        HTTP_SEC_GPC="1",
    )
    drain()
    assert list(ConsentRecord.objects.values_list("anonymous_id", "purpose__key", "granted", "source")) == [
        ("anon-gpc", "marketing", False, "gpc")
    ]
    assert Event.objects.count() == 1  # GPC is about sale and sharing: analytics goes on


@pytest.mark.usefixtures("analytics_allowed")
def test_a_nul_character_is_refused_not_stored(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    batch = [view("n-1", "anon\u0000x"), view("n-2", properties={"product_id": "P", "note": "a\u0000b"}), view("n-3")]
    batch.append(view("n-4", properties={"product_id": "P", "note": "a literal \\u0000 is fine"}))
    response = post(client, "/v1/batch", {"batch": batch}, HTTP_AUTHORIZATION=basic(source_keys.write_key))
    assert response.status_code == 200
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [
        (0, "contains a NUL character (\\u0000)"),
        (1, "contains a NUL character (\\u0000)"),
    ]
    drain()
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["n-3", "n-4"]


def test_a_shops_own_consent_tool_cannot_override_a_recorded_withdrawal(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int]
) -> None:
    consent_record(subject=Subject(anonymous_id="refused"), choices={"analytics": False}, source="preference_center")
    granted_by_tool = {"consent": {"categoryPreferences": {"Analytics": True}}}
    batch = [view("w-1", "refused", context=granted_by_tool), view("w-2", "unknown", context=granted_by_tool)]
    response = post(client, "/v1/batch", {"batch": batch}, HTTP_AUTHORIZATION=basic(source_keys.write_key))
    assert response.json()["dropped"] == {"no_consent": 1}
    drain()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["w-2"]
