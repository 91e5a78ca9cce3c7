import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.models import ErasureReceipt, ExportRequest, PolicyVersion, PreferenceLink, Purpose, StaffAccessLog
from consent.selectors import consent_summary, subject_hash
from consent.services import consent_record, preference_link_issue
from consent.subjects import Subject
from tests.factories import CustomerFactory
from tracking.models import Customer

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/consent/purpose/",
        "/admin/consent/purpose/1/change/",
        "/admin/consent/policyversion/",
        "/admin/consent/consentrecord/",
        "/admin/consent/erasurereceipt/",
        "/admin/consent/exportrequest/",
        "/admin/consent/staffaccesslog/",
        "/admin/consent/subjectlink/",
        "/admin/consent/suppression/",
        "/admin/consent/preferencelink/",
        "/admin/django_celery_beat/periodictask/",
    ],
)
def test_consent_admin_pages_render(admin_client: Client, url: str) -> None:
    consent_record(subject=Subject(user_id="u-1"), choices={"analytics": True}, source="banner")
    assert admin_client.get(url).status_code == 200


def test_staff_revoke_a_persons_preference_links(admin_client: Client) -> None:
    anna, _ = preference_link_issue(subject=Subject(user_id="anna"))
    ben, _ = preference_link_issue(subject=Subject(user_id="ben"))
    selected = PreferenceLink.objects.get(user_id="anna")
    page = admin_client.post(
        "/admin/consent/preferencelink/", {"action": "revoke", "_selected_action": [selected.pk]}, follow=True
    )
    assert "1 link(s) revoked." in page.content.decode()
    assert (admin_client.get(anna).status_code, admin_client.get(ben).status_code) == (404, 200)
    assert admin_client.get(f"/admin/consent/preferencelink/{selected.pk}/change/").status_code == 200  # to read
    assert (
        "token_digest" not in admin_client.get(f"/admin/consent/preferencelink/{selected.pk}/change/").content.decode()
    )


def test_publishing_a_policy_version_asks_everyone_again(
    admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    consent_record(subject=Subject(user_id="u-1"), choices={"analytics": True}, source="banner")
    draft = PolicyVersion.objects.create(version=2, title="Second")
    draft.purposes.set(Purpose.objects.all())
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/consent/policyversion/", {"action": "publish", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.published_at is not None
    assert draft.published_by == User.objects.get(username="admin")
    assert consent_summary(Subject(user_id="u-1"))["needs_prompt"] is True
    # a published version can no longer be edited
    assert (
        admin_client.post(f"/admin/consent/policyversion/{draft.pk}/change/", {"title": "Changed"}).status_code == 403
    )


def test_an_older_version_cannot_be_published(admin_client: Client) -> None:
    old = PolicyVersion.objects.create(version=0, title="Older")
    old.purposes.set(Purpose.objects.all())
    response = admin_client.post(
        "/admin/consent/policyversion/", {"action": "publish", "_selected_action": [old.pk]}, follow=True
    )
    assert "Version 0 not published: must be above the published version 1." in response.content.decode()
    old.refresh_from_db()
    assert old.published_at is None


def test_staff_access_to_personal_data_is_logged(admin_client: Client) -> None:
    (record,) = consent_record(subject=Subject(user_id="u-7"), choices={"analytics": True}, source="banner")
    customer = CustomerFactory.create(user_id="u-7")
    admin_client.get("/admin/consent/consentrecord/", {"q": "u-7"})
    admin_client.get(f"/admin/consent/consentrecord/{record.pk}/change/")
    admin_client.get(f"/admin/tracking/customer/{customer.pk}/change/")
    user_hash = subject_hash("user", "u-7")
    assert list(
        StaffAccessLog.objects.order_by("id").values_list("staff_username", "action", "what", "subject_hash")
    ) == [
        ("admin", "search", "consent records", user_hash),
        ("admin", "search", "consent records", subject_hash("anonymous", "u-7")),
        ("admin", "view", f"consent record {record.pk}", user_hash),
        ("admin", "view", "customer profile", user_hash),
    ]
    assert admin_client.get("/admin/consent/staffaccesslog/").status_code == 200


def test_customer_export_and_erase_actions(
    admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    customer = CustomerFactory.create(user_id="u-9")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/tracking/customer/", {"action": "export_personal_data", "_selected_action": [customer.pk]}
        )
    export = ExportRequest.objects.get()
    assert (export.user_id, export.status, export.requested_via) == ("u-9", "ready", "admin")
    assert "JSON" in admin_client.get("/admin/consent/exportrequest/").content.decode()

    confirmation = admin_client.post(
        "/admin/tracking/customer/", {"action": "erase_personal_data", "_selected_action": [customer.pk]}
    )
    assert "Yes, erase them" in confirmation.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()  # nothing erased before confirming
    admin_client.post(
        "/admin/tracking/customer/",
        {"action": "erase_personal_data", "_selected_action": [customer.pk], "confirm": "erase"},
    )
    assert not Customer.objects.filter(pk=customer.pk).exists()
    receipt = ErasureReceipt.objects.get()
    assert (receipt.requested_via, receipt.requested_by) == ("admin", User.objects.get(username="admin"))
    assert sorted(StaffAccessLog.objects.values_list("action", flat=True)) == ["erase", "export"]
