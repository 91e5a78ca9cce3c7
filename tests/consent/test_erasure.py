"""Erasure reaches every registered store: afterwards nothing identifying remains anywhere.

Every later issue that stores personal data registers its store and extends ``seed_everything``.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import models
from django.db.models.functions import Cast
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.models import ErasureReceipt, ExportRequest, StaffAccessLog, Suppression
from consent.registry import personal_data_stores
from consent.selectors import consent_allows, identities_for, subject_hash, subject_suppressed
from consent.services import (
    consent_record,
    export_request_create,
    preference_link_issue,
    subject_erase,
    subject_link,
)
from consent.subjects import Subject
from personalization import session_lists
from personalization.model_store import HASH_BYTES, active_model
from personalization.models import Exposure, ExposureOutcome
from personalization.recommendations import recommendations_for_visitor
from personalization.services import model_version_train
from personalization.services.session_lists import session_lists_score
from tests.factories import ProductFactory
from tests.personalization.history import FAST
from tracking import dead_letters
from tracking.models import Customer, Order
from tracking.services import OrderIn, OrderLineIn, order_bulk_record

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

USER = "erase-me-user-7f3a"
REC_ID = uuid.UUID("7f3a0000-0000-4000-8000-00000000e7a5")
ANONYMOUS = "anon-erase-me-91c2"
IDENTIFIERS = (USER, ANONYMOUS)


def seed_everything(
    client: Client, admin_client: Client, on_commit: DjangoCaptureOnCommitCallbacks, drain: Callable[[], int]
) -> None:
    """The subject, with data in every registered store."""
    ProductFactory.create(sku="85123A", price=Decimal("2.55"))
    order_bulk_record(
        orders=[
            OrderIn(
                order_id="536365",
                placed_at=datetime(2011, 12, 1, tzinfo=UTC),
                user_id=USER,
                lines=[OrderLineIn("85123A", "Holder", 2, Decimal("2.55"))],
                properties={"country": "United Kingdom"},
            ),
            OrderIn(
                order_id="guest-1",
                placed_at=datetime(2011, 12, 2, tzinfo=UTC),
                anonymous_id=ANONYMOUS,
                lines=[OrderLineIn("85123A", "Holder", 1, Decimal("2.55"))],
            ),
        ],
        origin="import",
    )
    customer = Customer.objects.get(user_id=USER)
    customer.email = "anna@example.com"
    customer.save()
    # staff edits the customer: the admin log names them
    admin_client.post(
        f"/admin/tracking/customer/{customer.pk}/change/",
        {"user_id": USER, "email": "anna@example.com", "country": "GB", "traits": "{}"},
    )
    with on_commit(execute=True):
        consent_record(
            subject=Subject(anonymous_id=ANONYMOUS),
            choices={"analytics": True},
            source="banner",
            ip_address="203.0.113.50",
            user_agent="UA",
        )
        subject_link(anonymous_id=ANONYMOUS, user_id=USER, source="login")
        consent_record(
            subject=Subject(user_id=USER), choices={"marketing": True, "personalization": True}, source="api"
        )
        export_request_create(subject=Subject(user_id=USER), requested_via="preference_center")
        preference_link_issue(subject=Subject(user_id=USER, anonymous_id=ANONYMOUS))
    # tracked events and the real-time profiles they build
    from tracking.services import source_create

    keys = source_create(name="Erasure test source")
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": ANONYMOUS,
            "messageId": "erase-e1",
            "properties": {"product_id": "85123A"},
        },
        {
            "type": "identify",
            "anonymousId": ANONYMOUS,
            "userId": USER,
            "messageId": "erase-e2",
            "traits": {"email": "anna@example.com"},
        },
        {
            "type": "track",
            "event": "Product Added",
            "userId": USER,
            "messageId": "erase-e3",
            "properties": {"product_id": "85123A"},
        },
    ]
    response = client.post(  # the shop's server: its secret key vouches for the user id
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}"
    )
    assert response.json()["accepted"] == 3, response.content
    drain()
    # a recommendation shown to them (the exposure log), and their click on it
    Exposure.objects.create(
        rec_id=REC_ID,
        placement="home",
        strategy="personalized",
        personalized=True,
        user_id=USER,
        anonymous_id=ANONYMOUS,
        items=[{"sku": "85123A", "position": 1, "propensity": None}],
        shown_at=datetime(2011, 12, 3, tzinfo=UTC),
    )
    click = {
        "type": "track",
        "event": "Product Clicked",
        "userId": USER,
        "messageId": "erase-click",
        "properties": {"rec_id": str(REC_ID), "product_id": "85123A", "position": 1},
    }
    response = client.post(
        "/v1/batch", {"batch": [click]}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}"
    )
    assert response.json()["accepted"] == 1
    drain()
    assert ExposureOutcome.objects.filter(exposure_id=REC_ID, kind="click").count() == 1
    # a trained model: the subject's history, factors and buy-again numbers (under a keyed hash)
    with on_commit(execute=True):
        version = model_version_train(trigger="test", params=FAST)
    assert version.counts["people"] == 1
    # the list scored with their session (their cart), ahead of their next request (with Redis)
    assert session_lists_score(profile_keys=[f"u:{USER}"]) == (1 if settings.REDIS_URL else 0)
    if settings.REDIS_URL:  # and the country a widget asked for them with, noted beside it
        session_lists.country_note(f"u:{USER}", "GB")
    # events the consumers set aside: one naming them through their anonymous id, one their user
    # id, and a whole batch (set aside before events were split) with someone else's event
    if settings.REDIS_URL:
        batch = {"id": "dead", "source": keys.source.pk, "received_at": "2026-01-05T10:00:01+00:00",
                 "events": [{**events[0], "messageId": "dead-1"}, {**events[2], "messageId": "dead-2"},
                            {**events[0], "anonymousId": "someone-else", "messageId": "dead-3"}],
                 "dropped": {}, "rejected": 0}  # fmt: skip
        failure = TypeError("can't compare offset-naive and offset-aware datetimes")
        dead_letters.entry_set_aside(entry_id="1-0", batch=batch, poison=[(0, events[0], failure)])
        dead_letters.entry_set_aside(entry_id="2-0", batch=batch, poison=[(1, events[2], failure)])
        dead_letters.entry_set_aside_whole(entry_id="3-0", batch=batch, error=failure)
    # the demo shop: a session browsing as the customer (in the database and, cached_db, in the cache)
    client.post("/shop/customers/browse-as/", {"user_id": USER})
    session = client.session
    session["pz_anonymous_id"] = ANONYMOUS
    session.save()


def rows_naming(identifier: str) -> dict[str, int]:
    """Every text-like column of every table, searched for the identifier."""
    found: dict[str, int] = {}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField):
                lookup = {f"{field.name}__icontains": identifier}
                queryset = model._default_manager.filter(**lookup)
            elif isinstance(field, models.JSONField):
                queryset = model._default_manager.annotate(as_text=Cast(field.name, models.TextField())).filter(
                    as_text__icontains=identifier
                )
            else:
                continue
            if count := queryset.count():
                found[f"{model._meta.db_table}.{field.column}"] = count
    return found


def sessions_naming(identifier: str) -> int:
    return sum(identifier in str(session.get_decoded()) for session in Session.objects.all())


def redis_naming(identifier: str) -> list[bytes]:
    if not settings.REDIS_URL:
        return []
    client = redis.Redis.from_url(settings.REDIS_URL)
    hits = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        value: Any = client.get(key) if kind == b"string" else b""
        if kind == b"stream":  # every field of every entry (the event stream, its dead letters)
            entries: Any = client.xrange(key)
            value = b" ".join(v for _, fields in entries for v in fields.values())
        if identifier.encode() in key or identifier.encode() in (value or b""):
            hits.append(key)
    return hits


def test_erasure_leaves_nothing_identifying_anywhere(
    settings: Any,
    client: Client,
    admin_client: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    drain: Callable[[], int],
) -> None:
    settings.PZ_MODEL_CHECK_SECONDS = 0  # serving checks the active version at every call
    seed_everything(client, admin_client, django_capture_on_commit_callbacks, drain)
    for identifier in IDENTIFIERS:  # the seed really put the subject everywhere
        assert rows_naming(identifier), identifier
    assert sessions_naming(USER) == 1
    if settings.REDIS_URL:
        assert redis_naming(USER), "the cached session should name the customer before erasure"
    assert ExportRequest.objects.get().status == "ready"
    assert {store.name for store in personal_data_stores()} == {
        "consent",
        "tracking",
        "demo shop",
        "recommendation models",
        "recommendation exposures",
        "session recommendation lists",
        "event dead letters",
    }
    model = active_model()
    assert model is not None and model.user_row([subject_hash("user", USER)]) >= 0
    row = model.user_row([subject_hash("user", USER)])
    assert model.top is not None and model.top.scores[row].any()  # their precomputed list
    assert recommendations_for_visitor(Subject(user_id=USER)).personalized

    with django_capture_on_commit_callbacks(execute=True):
        receipt = subject_erase(subject=Subject(anonymous_id=ANONYMOUS), requested_via="test")

    for identifier in (*IDENTIFIERS, "anna@example.com"):
        assert rows_naming(identifier) == {}, identifier
        assert sessions_naming(identifier) == 0
        assert redis_naming(identifier) == []
    assert receipt.removed == {
        # two links: the seed's, and the one "browse as" made from the session's first anonymous id
        "consent": {
            "consent records anonymised": 3,
            "identity links deleted": 2,
            "data exports deleted": 1,
            "preference-center links deleted": 1,
        },
        "tracking": {
            "customers deleted": 1,
            "orders anonymised": 2,
            "admin log entries deleted": 1,
            "events deleted": 4,
            "profiles deleted": 1,  # the anonymous id was linked to the user before its events came
        },
        "demo shop": {"demo shop sessions deleted": 1},
        "recommendation models": {"people removed from model versions": 1},
        "recommendation exposures": {"exposures anonymised": 1, "their outcomes kept without ids": 1},
        "session recommendation lists": {
            "session lists deleted": 1 if settings.REDIS_URL else 0,
            "session list countries deleted": 1 if settings.REDIS_URL else 0,
        },
        "event dead letters": {"dead-lettered events deleted": 4 if settings.REDIS_URL else 0},
    }
    if settings.REDIS_URL:  # someone else's event stays, for a person to look at
        (kept,) = dead_letters.dead_letters_list()
        assert [event["messageId"] for event in kept.batch["events"]] == ["dead-3"]
    exposure = Exposure.objects.get(rec_id=REC_ID)  # the campaign's figures keep it, without ids
    assert (exposure.user_id, exposure.anonymous_id, exposure.outcomes.count()) == ("", "", 1)
    # the model files no longer know them, serving reloads them, and nothing personal is served
    (model_directory,) = [path for path in settings.PZ_MODEL_DIR.iterdir() if path.is_dir()]
    hashed = subject_hash("user", USER)[:HASH_BYTES].encode()
    assert hashed not in (model_directory / "user_hashes.npy").read_bytes()
    reloaded = active_model()
    assert reloaded is not None and reloaded.revision == 1 and reloaded.user_row([subject_hash("user", USER)]) == -1
    assert reloaded.top is not None and not reloaded.top.scores[row].any() and not reloaded.top.rows[row].any()
    assert not recommendations_for_visitor(Subject(user_id=USER)).personalized
    assert len(receipt.subject_hashes) == 3  # the user and both anonymous ids
    assert {subject_hash("user", USER), subject_hash("anonymous", ANONYMOUS)} < set(receipt.subject_hashes)
    assert Suppression.objects.count() == 3
    assert Order.objects.count() == 2  # the shop's revenue keeps its orders, anonymous
    assert Order.objects.filter(customer__isnull=True, anonymous_id="", properties={}).count() == 2


def test_an_erased_subject_is_suppressed_until_they_consent_again(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    subject = Subject(user_id=USER)
    consent_record(subject=subject, choices={"analytics": True}, source="banner")
    with django_capture_on_commit_callbacks(execute=True):
        subject_erase(subject=subject, requested_via="test")
    # A late event for the subject is dropped: the collector asks exactly this.
    assert subject_suppressed(subject) is True
    assert consent_allows(subject=subject, purpose="analytics") is False
    assert consent_allows(subject=subject, purpose="necessary") is True
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(subject=subject, choices={"analytics": True}, source="banner")
    assert subject_suppressed(subject) is False
    assert consent_allows(subject=subject, purpose="analytics") is True


def test_an_erasure_by_staff_is_audited(admin_user: object) -> None:
    subject_erase(subject=Subject(user_id=USER), requested_via="admin", requested_by=admin_user)  # type: ignore[arg-type]
    (entry,) = StaffAccessLog.objects.all()
    assert (entry.staff_username, entry.action, entry.subject_hash) == ("admin", "erase", subject_hash("user", USER))
    assert ErasureReceipt.objects.get().requested_by == admin_user


def test_erasure_covers_linked_identities() -> None:
    subject_link(anonymous_id="anon-a", user_id="user-b", source="login")
    identities = identities_for(Subject(user_id="user-b"))
    assert identities.anonymous_ids == frozenset({"anon-a"})
    receipt = subject_erase(subject=Subject(user_id="user-b"), requested_via="test")
    assert sorted(receipt.subject_hashes) == sorted(
        [subject_hash("user", "user-b"), subject_hash("anonymous", "anon-a")]
    )
    assert subject_suppressed(Subject(anonymous_id="anon-a")) is True
