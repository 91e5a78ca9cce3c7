"""A batch's events are validated straight from their JSON when they can be, and fall back to the
full path one by one: the answer, and what reaches the stream, are the same either way."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consent.models import Purpose
from consent.selectors import POLICY_KEY, Gate, consent_gate_foreseen, state_key
from consent.services import consent_record, refresh_policy_cache, subject_erase
from consent.subjects import Subject
from tracking import stream
from tracking.event_schema import InvalidEvent, validate_encoded_event, validate_event
from tracking.ingestion import FAST_EVENT_BYTES, _iso, events_ingest

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

# --- validation: straight from JSON, or decoded then converted ------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.sampled_from(["", "t", "track", "identify", "alias", "group", "page", "USD", "u1", "a1", "x" * 130]),
    st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00", "1700000000"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner))
product = st.dictionaries(
    st.sampled_from(["product_id", "sku", "price", "quantity", "name", "currency", "position"]), scalars, max_size=5
)
properties = st.one_of(
    values,
    product,
    st.fixed_dictionaries(
        {}, optional={"order_id": scalars, "revenue": scalars, "products": st.lists(product, max_size=2) | scalars}
    ),
    st.fixed_dictionaries({}, optional={"query": scalars}),
)
raw_events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "t", "x"]) | scalars,
        "messageId": scalars,
        "userId": scalars,
        "anonymousId": st.sampled_from(["a1", "a2"]) | scalars,
        "event": st.sampled_from(["Product Viewed", "Order Completed", "Cart Viewed", "Products Searched"]) | scalars,
        "timestamp": scalars,
        "originalTimestamp": scalars,
        "sentAt": scalars,
        "context": st.dictionaries(st.sampled_from(["ip", "userAgent", "pz", "page"]), values) | scalars,
        "properties": properties,
        "traits": values,
        "name": scalars,
        "groupId": scalars,
        "previousId": scalars,
        "_metadata": values,
    },
)


def _slow(data: bytes, batch_context: dict[str, Any] | None) -> Any:
    try:
        return validate_event(msgspec.json.decode(data), batch_context=batch_context)
    except InvalidEvent as exc:
        return ("refused", exc.field)


@pytest.mark.embedded
@given(raw=raw_events, batch_context=st.none() | st.just({"ip": "203.0.113.9", "library": {"name": "x"}}))
@hypothesis_settings(max_examples=400, deadline=None)
def test_an_event_the_json_path_accepts_is_the_event_the_full_path_accepts(
    raw: dict[str, Any], batch_context: dict[str, Any] | None
) -> None:
    data = msgspec.json.encode(raw)
    try:
        fast = validate_encoded_event(data, batch_context=batch_context)
    except (msgspec.DecodeError, msgspec.ValidationError, InvalidEvent):
        return  # the collector falls back to the full path for this event
    slow = _slow(data, batch_context)
    assert isinstance(slow, type(fast))
    if "messageId" not in raw or raw["messageId"] is None:  # each path made up its own
        assert fast.messageId.startswith("pz-") and slow.messageId.startswith("pz-")  # type: ignore[union-attr]
        fast.messageId = slow.messageId = None
    assert fast == slow


@pytest.mark.embedded
def test_a_well_formed_event_takes_the_json_path() -> None:
    raw = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m1",
        "userId": 42,
        "timestamp": "2026-11-22T10:00:00Z",
        "context": {"userAgent": CHROME},
        "properties": {"order_id": "o1", "revenue": "9.50", "products": [{"sku": "S1", "quantity": "2"}]},
    }
    fast = validate_encoded_event(json.dumps(raw).encode(), batch_context={"ip": "203.0.113.9"})

    assert fast == validate_event(raw, batch_context={"ip": "203.0.113.9"})
    assert fast.userId == 42
    assert fast.context == {"ip": "203.0.113.9", "userAgent": CHROME}
    assert fast.timestamp == datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.embedded
@given(moment=st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.timezones()) | st.datetimes())
def test_iso_writes_what_isoformat_writes(moment: datetime) -> None:
    assert _iso(moment) == moment.isoformat()


# --- a whole batch: from its JSON, or decoded -------------------------------------------------------


def _batch() -> list[Any]:
    def view(number: int, **extra: Any) -> dict[str, Any]:
        event = {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"m{number}",
            "anonymousId": f"a{number % 3}",
            "timestamp": "2026-11-22T10:00:00.250Z",
            "sentAt": "2026-11-22T11:00:01+01:00",
            "context": {"userAgent": CHROME, "pz": {"internal": True, "rec_id": "r1"}},
            "properties": {"product_id": f"P{number}", "price": 2.5},
        }
        event.update(extra)
        return event

    return [
        view(0),
        view(1, type="t"),  # a letter: the full path
        view(2, properties={"price": 2.5}),  # no product_id
        view(3, anonymousId=None),  # no id at all
        view(4, properties={"product_id": "P4", "note": "x" * (FAST_EVENT_BYTES + 10)}),  # big, under 32 KB
        view(5, properties={"product_id": "P5", "note": "x" * (40 * 1024)}),  # over 32 KB
        view(6, properties={"product_id": "P6", "note": "nul \u0000 here"}),
        view(7, properties={"product_id": "P7", "note": "not a nul: \\u0000"}),
        view(8, messageId=None, userId="u8", timestamp="2099-01-01T00:00:00Z"),  # clamped
        view(9, context={"userAgent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}),
        view(10, anonymousId="withdrawn"),
        view(11, context={"consent": {"categoryPreferences": {"Analytics": False}}}),
        view(12, timestamp="yesterday"),
        "not an event",
        {"type": "identify", "userId": "u13", "messageId": "m13", "traits": {"email": "a@example.com"}},
        view(15, messageId=15),
    ]


def _ingest(raw_events: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    received_at = datetime(2026, 11, 22, 10, 0, 3, 120000, tzinfo=UTC)
    result = events_ingest(
        source_id=1,
        raw_events=raw_events,
        meta={"REMOTE_ADDR": "198.51.100.77", "HTTP_USER_AGENT": "curl/8"},
        received_at=received_at,
        batch_context={"library": {"name": "analytics-python"}},
        batch_sent_at=received_at - timedelta(seconds=2),
        user_ids_trusted=True,
    )
    entries: Any = stream.client().xrevrange(stream.STREAM, count=1)
    ((_, fields),) = entries
    batch = msgspec.json.decode(fields[b"b"])
    stream.client().delete(stream.STREAM)
    for event in batch["events"]:
        if event["messageId"].startswith("pz-"):
            event["messageId"] = "made up"
    return result.body(batch=True), {key: value for key, value in batch.items() if key != "id"}


@pytest.mark.django_db
@pytest.mark.skipif(not settings.REDIS_URL, reason="reads what reached the stream")
def test_a_batch_from_json_gives_the_answer_and_the_entry_of_the_decoded_batch() -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()
    consent_record(subject=Subject(anonymous_id="withdrawn"), choices={"analytics": False}, source="banner")
    body = msgspec.json.encode(_batch())
    from_json = _ingest(msgspec.json.decode(body, type=list[msgspec.Raw]))
    decoded = _ingest(msgspec.json.decode(body))

    assert from_json == decoded
    answer, entry = from_json
    assert answer["accepted"] == 6
    assert answer["dropped"] == {"bot": 1, "no_consent": 2}
    assert [(r["index"], r["messageId"], r["field"]) for r in answer["rejected"]] == [
        (2, "m2", "properties.product_id"),
        (3, "m3", "userId"),
        (5, "m5", "event"),
        (6, "m6", "properties.note"),
        (12, "m12", "timestamp"),
        (13, None, "event"),
        (15, None, "messageId"),
    ]
    assert [e["messageId"] for e in entry["events"]] == ["m0", "m1", "m4", "m7", "made up", "m13"]
    first = entry["events"][0]
    assert first["timestamp"] == "2026-11-22T10:00:02.370000+00:00"  # receivedAt − (sentAt − originalTimestamp)
    assert first["originalTimestamp"] == "2026-11-22T10:00:00.250000+00:00"
    assert first["sentAt"] == "2026-11-22T11:00:01+01:00"
    assert first["receivedAt"] == "2026-11-22T10:00:03.120000+00:00"
    assert first["context"]["ip"] == "198.51.100.0"
    assert first["context"]["library"] == {"name": "analytics-python"}
    assert first["context"]["pz"] == {
        "rec_id": "r1",
        "agent": {"browser": "Chrome", "os": "Windows", "device": "desktop"},
    }


# --- deciding on the consent states last read, checked when appending -----------------------------


def _track(message_id: str, anonymous_id: str) -> tuple[int, dict[str, int]]:
    event = {"type": "track", "event": "Page Loved", "messageId": message_id, "anonymousId": anonymous_id}
    result = events_ingest(
        source_id=1,
        raw_events=[event],
        meta={"REMOTE_ADDR": "127.0.0.1"},
        received_at=timezone.now(),
        user_ids_trusted=True,
    )
    return result.accepted, dict(result.dropped)


def _stored_ids() -> list[str]:
    entries: Any = stream.client().xrange(stream.STREAM)
    return [e["messageId"] for _, fields in entries for e in msgspec.json.decode(fields[b"b"])["events"]]


@pytest.mark.django_db
@pytest.mark.skipif(not settings.REDIS_URL, reason="the stream and the consent states in Redis")
def test_a_known_visitors_event_is_appended_in_one_round_trip_unless_their_consent_changed() -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()
    stream.client().delete(stream.STREAM)
    visitor = Subject(anonymous_id="visitor")
    assert consent_gate_foreseen([visitor], "analytics") is None
    assert _track("m1", "visitor") == (1, {})  # not cached yet: loaded from the database and cached
    assert consent_gate_foreseen([visitor], "analytics") is None
    assert _track("m2", "visitor") == (1, {})  # read from the cache
    foreseen = consent_gate_foreseen([visitor], "analytics")
    assert foreseen is not None  # so the next event is decided before reading, and checked when appended
    assert foreseen.gates == {visitor: Gate(allowed=True, suppressed=False, withdrawn=False)}
    assert sorted(foreseen.expected) == sorted(
        cache.make_key(k) for k in (POLICY_KEY, state_key("anonymous", "visitor"))
    )
    assert _track("m2b", "visitor") == (1, {})

    consent_record(subject=Subject(anonymous_id="visitor"), choices={"analytics": False}, source="banner")
    assert _track("m3", "visitor") == (0, {"no_consent": 1})  # the script saw the change
    assert _track("m4", "visitor") == (0, {"no_consent": 1})  # decided on the new state
    consent_record(subject=Subject(anonymous_id="visitor"), choices={"analytics": True}, source="banner")
    assert _track("m5", "visitor") == (1, {})
    refresh_policy_cache()  # a policy published meanwhile (here, the same one) is checked too
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=[])
    refresh_policy_cache()
    assert _track("m6", "newcomer") == (0, {"no_consent": 1})

    subject_erase(subject=Subject(anonymous_id="visitor"), requested_via="api")
    assert _track("m7", "visitor") == (0, {"suppressed": 1})

    assert _stored_ids() == ["m1", "m2", "m2b", "m5"]
