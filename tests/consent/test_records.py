"""Consent records, the cached answer of consent_allows, and the append-only guarantee."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, models, transaction
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from consent.exceptions import ConsentError
from consent.models import ConsentRecord, ConsentRecordImmutable, PolicyVersion, Purpose, RecordUnlock, SubjectLink
from consent.selectors import consent_allows, consent_allows_each, consent_summary
from consent.services import consent_apply_gpc, consent_record, policy_version_publish, purposes_changed, subject_link
from consent.subjects import Subject
from tests.conftest import Commit

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

ANNA = Subject(user_id="user-anna")
BROWSER = Subject(anonymous_id="anon-browser-1")


def allows(subject: Subject, purpose: str, jurisdiction: str | None = None) -> bool:
    return consent_allows(subject=subject, purpose=purpose, jurisdiction=jurisdiction)


def test_defaults_before_any_choice() -> None:
    assert allows(ANNA, "necessary") is True
    assert [allows(ANNA, p) for p in ("analytics", "personalization", "marketing")] == [False, False, False]


def test_opt_out_jurisdictions_default_to_allowed(commit: Commit) -> None:
    assert allows(ANNA, "analytics", jurisdiction="US") is False  # caches the policy
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["US"])
    commit(purposes_changed)
    assert allows(ANNA, "analytics", jurisdiction="US") is True
    assert allows(ANNA, "analytics", jurisdiction="FR") is False


def test_consent_allows_answers_from_the_cache_after_each_kind_of_change(
    commit: Commit, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    commit(lambda: consent_record(subject=ANNA, choices={"analytics": True, "marketing": True}, source="banner"))
    with django_assert_num_queries(0):
        assert allows(ANNA, "analytics") is True
        assert allows(ANNA, "marketing") is True
        assert allows(ANNA, "personalization") is False

    commit(lambda: consent_record(subject=ANNA, choices={"marketing": False}, source="preference_center"))
    with django_assert_num_queries(0):
        assert allows(ANNA, "marketing") is False
        assert allows(ANNA, "analytics") is True

    version = PolicyVersion.objects.create(version=2, title="New policy", requires_renewal=True)
    version.purposes.set(Purpose.objects.all())
    commit(lambda: policy_version_publish(policy_version=version, published_by=None))
    with django_assert_num_queries(0):
        assert allows(ANNA, "analytics") is False  # the grant was under v1: it needs renewing
        assert consent_summary(ANNA)["needs_prompt"] is True

    commit(lambda: consent_record(subject=ANNA, choices={"analytics": True}, source="banner"))
    with django_assert_num_queries(0):
        assert allows(ANNA, "analytics") is True
        assert consent_summary(ANNA)["needs_prompt"] is False


def test_a_correction_that_needs_no_renewal_keeps_grants(commit: Commit) -> None:
    commit(lambda: consent_record(subject=ANNA, choices={"analytics": True}, source="banner"))
    version = PolicyVersion.objects.create(version=2, title="Typo fixed", requires_renewal=False)
    version.purposes.set(Purpose.objects.all())
    commit(lambda: policy_version_publish(policy_version=version, published_by=None))
    assert allows(ANNA, "analytics") is True
    assert consent_summary(ANNA)["needs_prompt"] is True  # the banner still asks again


def test_gpc_withdraws_marketing_once_and_respects_a_later_explicit_grant(
    commit: Commit, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    commit(lambda: consent_record(subject=BROWSER, choices={"marketing": True, "analytics": True}, source="banner"))
    records = commit(lambda: consent_apply_gpc(subject=BROWSER, ip_address="203.0.113.5", user_agent="UA"))
    assert [(r.purpose_id, r.granted, r.source, r.gpc, r.ip_address) for r in records] == [
        ("marketing", False, "gpc", True, "203.0.113.0")
    ]
    with django_assert_num_queries(0):
        assert allows(BROWSER, "marketing") is False
        assert allows(BROWSER, "analytics") is True  # GPC is about sale and sharing only (by default)
        assert consent_apply_gpc(subject=BROWSER) == []  # nothing more to record, no query

    # The person then allows marketing while their browser sends GPC: that explicit choice stands.
    commit(lambda: consent_record(subject=BROWSER, choices={"marketing": True}, source="banner", gpc=True))
    assert consent_apply_gpc(subject=BROWSER) == []
    assert allows(BROWSER, "marketing") is True
    assert ConsentRecord.objects.filter(source="gpc").count() == 1


def test_gpc_can_be_extended_to_personalization(commit: Commit, settings) -> None:
    settings.PZ_GPC_WITHDRAWS = ["marketing", "personalization"]
    records = commit(lambda: consent_apply_gpc(subject=BROWSER))
    assert sorted(str(r.purpose_id) for r in records) == ["marketing", "personalization"]


def test_stitching_carries_choices_across_and_the_latest_wins(
    commit: Commit, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    earlier = timezone.now() - timedelta(hours=1)
    commit(
        lambda: consent_record(
            subject=ANNA, choices={"marketing": True, "analytics": True}, source="api", recorded_at=earlier
        )
    )
    commit(
        lambda: consent_record(subject=BROWSER, choices={"marketing": False, "personalization": True}, source="banner")
    )
    assert allows(ANNA, "personalization") is False  # not linked yet

    link = commit(lambda: subject_link(anonymous_id=BROWSER.anonymous_id, user_id="user-anna", source="login"))
    assert isinstance(link, SubjectLink)
    with django_assert_num_queries(0):
        for subject in (ANNA, BROWSER, Subject(user_id="user-anna", anonymous_id="anon-browser-1")):
            assert allows(subject, "personalization") is True  # from the browser
            assert allows(subject, "marketing") is False  # the browser's refusal is more recent
            assert allows(subject, "analytics") is True  # from the account

    # A choice made later in the same browser, signed out, still belongs to Anna.
    commit(lambda: consent_record(subject=BROWSER, choices={"analytics": False}, source="banner"))
    assert allows(ANNA, "analytics") is False
    assert commit(lambda: subject_link(anonymous_id="anon-browser-1", user_id="user-anna", source="login")) is None


def test_choices_with_both_ids_link_them(commit: Commit) -> None:
    commit(
        lambda: consent_record(
            subject=Subject(user_id="u-9", anonymous_id="a-9"), choices={"analytics": True}, source="banner"
        )
    )
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id")) == [("a-9", "u-9")]
    assert allows(Subject(anonymous_id="a-9"), "analytics") is True


@pytest.mark.parametrize(
    ("choices", "field", "message"),
    [
        ({"profiling": True}, "choices.profiling", "is not a consent purpose"),
        ({"necessary": False}, "choices.necessary", "is required for the shop to work and cannot be refused"),
    ],
)
def test_bad_choices_name_the_field(choices: dict[str, bool], field: str, message: str) -> None:
    with pytest.raises(ConsentError) as error:
        consent_record(subject=ANNA, choices=choices, source="api")
    assert (error.value.field, error.value.message) == (field, message)
    assert ConsentRecord.objects.count() == 0


def test_a_record_keeps_its_proof() -> None:
    (record,) = consent_record(
        subject=ANNA,
        choices={"analytics": True, "necessary": True},
        source="banner",
        ip_address="2001:db8:abcd:12::7",
        user_agent="Mozilla/5.0 " + "x" * 600,
        gpc=True,
    )
    record.refresh_from_db()
    assert (record.user_id, record.purpose_id, record.granted, record.source, record.gpc) == (
        "user-anna",
        "analytics",
        True,
        "banner",
        True,
    )
    assert record.policy_version is not None and record.policy_version.version == 1
    assert record.ip_address == "2001:db8:abcd::"
    assert len(record.user_agent) == 512
    assert ConsentRecord.objects.count() == 1  # the required purpose is not recorded


# --- append-only --------------------------------------------------------------------------------


@pytest.fixture
def record() -> ConsentRecord:
    (stored,) = consent_record(subject=ANNA, choices={"marketing": True}, source="banner", ip_address="203.0.113.7")
    return stored


def test_orm_refuses_to_save_an_existing_record(record: ConsentRecord) -> None:
    record.granted = False
    with pytest.raises(ConsentRecordImmutable):
        record.save()
    with pytest.raises(ConsentRecordImmutable):
        record.delete()
    with pytest.raises(ConsentRecordImmutable):
        ConsentRecord.objects.filter(pk=record.pk).update(granted=False)
    with pytest.raises(ConsentRecordImmutable):
        ConsentRecord.objects.all().delete()
    assert ConsentRecord.objects.get(pk=record.pk).granted is True


def test_database_refuses_an_update_that_bypasses_the_orm_guard(record: ConsentRecord) -> None:
    with pytest.raises(DatabaseError, match="append-only: UPDATE refused"), transaction.atomic():
        models.QuerySet.update(ConsentRecord.objects.filter(pk=record.pk), granted=False)
    assert ConsentRecord.objects.get(pk=record.pk).granted is True


def test_database_refuses_a_delete_that_bypasses_the_orm_guard(record: ConsentRecord) -> None:
    with pytest.raises(DatabaseError, match="append-only: DELETE refused"), transaction.atomic():
        models.QuerySet.delete(ConsentRecord.objects.filter(pk=record.pk))
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_consentrecord SET granted = false",
        "UPDATE consent_consentrecord SET recorded_at = recorded_at",
        "DELETE FROM consent_consentrecord",
    ],
)
def test_database_refuses_raw_sql(record: ConsentRecord, statement: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert ConsentRecord.objects.filter(pk=record.pk, granted=True).count() == 1


def test_even_erasure_may_only_strip_identifiers(record: ConsentRecord) -> None:
    with transaction.atomic():
        RecordUnlock.objects.create()
        with pytest.raises(DatabaseError, match="may only replace the identifiers"), transaction.atomic():
            models.QuerySet.update(
                ConsentRecord.objects.filter(pk=record.pk), granted=False, user_id="", erased_subject="h"
            )
        RecordUnlock.objects.all().delete()
    with transaction.atomic():
        RecordUnlock.objects.create()
        assert ConsentRecord.objects.filter(pk=record.pk).strip_identifiers(erased_subject="h" * 64) == 1
        RecordUnlock.objects.all().delete()
    stripped = ConsentRecord.objects.get(pk=record.pk)
    assert (stripped.user_id, stripped.ip_address, stripped.erased_subject, stripped.granted) == (
        "",
        "",
        "h" * 64,
        True,
    )


def test_admin_cannot_change_or_delete_records(admin_client: Client, record: ConsentRecord) -> None:
    assert admin_client.get(f"/admin/consent/consentrecord/{record.pk}/change/").status_code == 200  # view only
    page = admin_client.get(f"/admin/consent/consentrecord/{record.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    response = admin_client.post(f"/admin/consent/consentrecord/{record.pk}/change/", {"granted": "off"})
    assert response.status_code == 403
    assert admin_client.post(f"/admin/consent/consentrecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_client.post(
        "/admin/consent/consentrecord/", {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"}
    )
    assert ConsentRecord.objects.filter(pk=record.pk, granted=True).exists()
    assert admin_client.get("/admin/consent/consentrecord/add/").status_code == 403


def test_consent_allows_each_answers_as_consent_allows_for_each(commit: Commit) -> None:
    """The batch question a worker asks (one cache round trip) gives each person's own answer."""
    Purpose.objects.filter(key="personalization").update(opt_out_jurisdictions=["US"])
    commit(purposes_changed)
    granted, withdrawn, silent = Subject(user_id="g"), Subject(user_id="w"), Subject(anonymous_id="s")
    linked = Subject(anonymous_id="browser-of-g")
    commit(lambda: consent_record(subject=granted, choices={"personalization": True}, source="api"))
    commit(lambda: consent_record(subject=withdrawn, choices={"personalization": False}, source="api"))
    commit(lambda: subject_link(anonymous_id="browser-of-g", user_id="g", source="login"))
    people = [granted, withdrawn, silent, linked]
    for jurisdictions in ({}, {silent: "US", withdrawn: "US"}, {silent: "FR"}):
        expected = {
            p for p in people if consent_allows(subject=p, purpose="personalization", jurisdiction=jurisdictions.get(p))
        }
        assert consent_allows_each(people, "personalization", jurisdictions=jurisdictions) == expected
    assert consent_allows_each(people, "personalization") == {granted, linked}
    assert consent_allows_each(people, "personalization", jurisdictions={silent: "US"}) == {granted, linked, silent}
