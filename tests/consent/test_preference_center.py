import json
import re
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.links import PREFERENCE_SALT, preference_link, preference_token
from consent.models import ConsentRecord, ErasureReceipt, ExportRequest
from consent.selectors import consent_allows, subject_suppressed
from consent.services import consent_record
from consent.subjects import Subject

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

ANNA = Subject(user_id="user-anna")
BEN = Subject(user_id="user-ben")


def link(subject: Subject) -> str:
    return preference_link(subject)[0]


def test_the_page_shows_each_purpose_and_the_history(client: Client) -> None:
    consent_record(subject=ANNA, choices={"marketing": True}, source="banner")
    response = client.get(link(ANNA))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Customer user-anna" in page
    for name in ("Strictly necessary", "Analytics", "Personalization", "Marketing"):
        assert name in page
    assert [(p["purpose"].key, p["allowed"]) for p in response.context["purposes"]] == [
        ("necessary", True),
        ("analytics", False),
        ("personalization", False),
        ("marketing", True),
    ]
    assert [(r.purpose_id, r.granted, r.source) for r in response.context["history"]] == [("marketing", True, "banner")]
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_change_is_recorded_as_a_new_record(client: Client) -> None:
    consent_record(subject=ANNA, choices={"marketing": True}, source="banner")
    url = link(ANNA)
    response = client.post(
        url,
        {"purpose-analytics": "allow", "purpose-personalization": "deny", "purpose-marketing": "deny"},
        HTTP_USER_AGENT="Safari",
        REMOTE_ADDR="192.0.2.44",
    )
    assert response.status_code == 302
    assert response["Location"] == url
    assert list(
        ConsentRecord.objects.order_by("id").values_list("purpose__key", "granted", "source", "ip_address")
    ) == [
        ("marketing", True, "banner", ""),
        ("analytics", True, "preference_center", "192.0.2.0"),
        ("marketing", False, "preference_center", "192.0.2.0"),
    ]
    client.post(url, {"purpose-analytics": "allow", "purpose-personalization": "deny", "purpose-marketing": "deny"})
    assert ConsentRecord.objects.count() == 3  # nothing changed: nothing recorded


def test_csrf_is_enforced() -> None:
    strict = Client(enforce_csrf_checks=True)
    url = link(ANNA)
    assert strict.post(url, {"purpose-analytics": "allow"}).status_code == 403
    assert strict.post(url.rstrip("/") + "/erase/", {"confirm": "erase"}).status_code == 403
    assert ConsentRecord.objects.count() == 0
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', strict.get(url).content.decode())
    assert token is not None
    response = strict.post(url, {"purpose-analytics": "allow", "csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert ConsentRecord.objects.count() == 1


def test_an_expired_link_is_refused(client: Client) -> None:
    token = preference_token(ANNA, timezone.now() - timedelta(seconds=1))
    response = client.get(f"/privacy/p/{token}/")
    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    assert client.post(f"/privacy/p/{token}/", {"purpose-analytics": "allow"}).status_code == 410
    assert ConsentRecord.objects.count() == 0


def test_a_tampered_link_is_refused(client: Client) -> None:
    token = preference_token(ANNA, timezone.now() + timedelta(days=1))
    value, _, signature = token.rpartition(":")
    forged_payload = signing.dumps({"u": "user-ben", "a": "", "e": 9_999_999_999}, salt=PREFERENCE_SALT, compress=True)
    for bad in (
        f"{value}:{signature[:-2]}xx",
        forged_payload.rpartition(":")[0] + ":" + signature,
        "garbage",
        token[:-1],
    ):
        assert client.get(f"/privacy/p/{bad}/").status_code == 404
    assert client.get(f"/privacy/p/{token}/").status_code == 200


def test_another_persons_data_is_unreachable(client: Client) -> None:
    consent_record(subject=BEN, choices={"marketing": True}, source="banner")
    ben_export = ExportRequest.objects.create(user_id="user-ben", requested_via="test")
    response = client.get(link(ANNA))
    assert list(response.context["history"]) == []
    assert response.context["exports"] == []
    assert "user-ben" not in response.content.decode()
    # No id appears in any URL to change: the export download is signed too.
    assert client.get(f"/privacy/downloads/{ben_export.pk}/").status_code == 404


def test_download_my_data(client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks) -> None:
    consent_record(subject=ANNA, choices={"analytics": True}, source="banner", ip_address="203.0.113.9")
    url = link(ANNA)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url.rstrip("/") + "/export/")["Location"] == url
    export = ExportRequest.objects.get()
    assert (export.status, export.requested_via) == ("ready", "preference_center")
    assert export.expires_at is not None
    assert export.completed_at is not None
    assert timedelta(hours=23, minutes=59) < export.expires_at - export.completed_at <= timedelta(hours=24)
    page = client.get(url)
    (row,) = page.context["exports"]
    response = client.get(row["download"])
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="my-data.json"'
    document = json.loads(b"".join(response.streaming_content))  # type: ignore[attr-defined]
    assert document["subject"] == {"user_ids": ["user-anna"], "anonymous_ids": []}
    assert set(document["stores"]) == {
        "consent",
        "tracking",
        "demo shop",
        "recommendation models",
        "recommendation exposures",
        "session recommendation lists",
    }
    assert document["stores"]["session recommendation lists"] == {"session_lists": [], "session_list_countries": []}
    assert [
        (r["purpose"], r["choice"], r["ip_address_truncated"]) for r in document["stores"]["consent"]["consent_records"]
    ] == [("analytics", "granted", "203.0.113.0")]


def test_an_expired_export_is_not_served(client: Client) -> None:
    from consent.links import export_download_path

    export = ExportRequest.objects.create(
        user_id="user-anna",
        requested_via="test",
        status="ready",
        content=b"x",
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert client.get(export_download_path(export.pk)).status_code == 404


def test_delete_my_data_needs_confirmation_then_gives_a_receipt(client: Client) -> None:
    consent_record(subject=ANNA, choices={"analytics": True}, source="banner")
    url = link(ANNA)
    assert "I understand; erase my data." in client.get(url.rstrip("/") + "/erase/").content.decode()
    assert client.post(url.rstrip("/") + "/erase/", {})["Location"] == url.rstrip("/") + "/erase/"
    assert ErasureReceipt.objects.count() == 0
    response = client.post(url.rstrip("/") + "/erase/", {"confirm": "erase"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Your data was erased" in page
    assert "consent records anonymised" in page
    receipt = ErasureReceipt.objects.get()
    assert receipt.removed["consent"]["consent records anonymised"] == 1
    assert subject_suppressed(ANNA) is True
    assert consent_allows(subject=ANNA, purpose="analytics") is False
    assert "Your data was erased" in client.get(url).content.decode()


def test_posting_too_often_is_rate_limited(client: Client) -> None:
    url = link(ANNA)
    statuses = [client.post(url, {"purpose-analytics": "allow"}).status_code for _ in range(22)]
    assert statuses.count(429) == 2
    assert statuses[:20] == [302] * 20


def test_the_policy_page_shows_the_published_policy(client: Client) -> None:
    response = client.get("/privacy/policy/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Version 1" in page
    assert "Legal basis: Consent (GDPR art. 6(1)(a))." in page
    assert 'href="http://testserver/privacy/policy/"' in client.get(link(ANNA)).content.decode()
