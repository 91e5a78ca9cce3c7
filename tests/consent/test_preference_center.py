import base64
import hashlib
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.models import ConsentRecord, ErasureReceipt, ExportRequest, PreferenceLink
from consent.selectors import consent_allows, subject_suppressed
from consent.services import consent_record, preference_link_issue, preference_links_revoke, subject_erase
from consent.subjects import Subject

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

ANNA = Subject(user_id="user-anna")
BEN = Subject(user_id="user-ben")


def link(subject: Subject) -> str:
    return preference_link_issue(subject=subject)[0]


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
    url = link(ANNA)
    PreferenceLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(url)
    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    assert client.post(url, {"purpose-analytics": "allow"}).status_code == 410
    assert ConsentRecord.objects.count() == 0


def test_a_link_lasts_the_configured_time(settings: Any) -> None:
    settings.PZ_PREFERENCE_LINK_MAX_AGE = 3600
    before = timezone.now()
    _, expires_at = preference_link_issue(subject=ANNA)
    assert before + timedelta(seconds=3600) <= expires_at <= timezone.now() + timedelta(seconds=3600)
    assert PreferenceLink.objects.get().expires_at == expires_at


def test_a_link_is_opaque_and_only_its_digest_is_stored(client: Client) -> None:
    url = link(Subject(user_id="user-anna", anonymous_id="browser-anna"))
    token = url.removeprefix("/privacy/p/").rstrip("/")
    assert len(token) == 43
    readable = token + "=" * (-len(token) % 4)
    decoded = base64.urlsafe_b64decode(readable)
    assert b"anna" not in decoded and "anna" not in token
    stored = PreferenceLink.objects.get()
    assert (stored.user_id, stored.anonymous_id, stored.revoked_at) == ("user-anna", "browser-anna", None)
    assert stored.token_digest == hashlib.sha256(token.encode()).hexdigest()
    assert client.get(url).status_code == 200


def test_an_unknown_or_changed_link_is_refused(client: Client) -> None:
    url = link(ANNA)
    token = url.removeprefix("/privacy/p/").rstrip("/")
    for bad in (token[:-1], token[:-1] + ("A" if token[-1] != "A" else "B"), "garbage"):
        assert client.get(f"/privacy/p/{bad}/").status_code == 404
    assert client.get(url).status_code == 200


def test_a_new_link_for_the_person_revokes_their_older_ones(client: Client) -> None:
    first, ben = link(ANNA), link(BEN)
    second = link(ANNA)
    assert client.get(first).status_code == 404
    assert client.post(first, {"purpose-analytics": "allow"}).status_code == 404
    assert (client.get(second).status_code, client.get(ben).status_code) == (200, 200)
    assert ConsentRecord.objects.count() == 0


def test_a_service_revokes_a_persons_links(client: Client) -> None:
    url, ben = link(ANNA), link(BEN)
    assert preference_links_revoke(subject=ANNA) == 1
    assert (client.get(url).status_code, client.get(ben).status_code) == (404, 200)


def test_an_erasure_deletes_the_persons_links(client: Client) -> None:
    url, ben = link(ANNA), link(BEN)
    subject_erase(subject=ANNA, requested_via="test")
    assert client.get(url).status_code == 404
    assert list(PreferenceLink.objects.values_list("user_id", flat=True)) == ["user-ben"]
    assert client.get(ben).status_code == 200


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
        "event dead letters",
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
    assert client.get(url).status_code == 404  # the erasure deleted the link with the rest


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
