from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from consent.models import ExportRequest, PreferenceLink
from consent.services import preference_link_issue
from consent.subjects import Subject
from consent.tasks import retention_purge
from tracking.models import Event
from tracking.services import source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_the_purge_is_scheduled_nightly() -> None:
    task = PeriodicTask.objects.select_related("crontab").get(task="consent.tasks.retention_purge")
    assert task.enabled is True
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "3", "UTC")


def test_the_purge_removes_old_events_expired_exports_and_sessions_only(settings) -> None:
    now = timezone.now()
    source = source_create(name="Web").source
    for message_id, age in (("old", settings.PZ_RETENTION_DAYS + 1), ("recent", settings.PZ_RETENTION_DAYS - 1)):
        Event.objects.create(
            source=source, message_id=message_id, type="page", timestamp=now - timedelta(days=age), received_at=now
        )
    expired = ExportRequest.objects.create(
        user_id="u", requested_via="t", status="ready", expires_at=now - timedelta(minutes=1)
    )
    valid = ExportRequest.objects.create(
        user_id="u", requested_via="t", status="ready", expires_at=now + timedelta(hours=1)
    )
    preference_link_issue(subject=Subject(user_id="u"))  # revoked by the next one
    preference_link_issue(subject=Subject(user_id="u"))
    preference_link_issue(subject=Subject(user_id="v"))
    PreferenceLink.objects.filter(user_id="v").update(expires_at=now - timedelta(minutes=1))
    old_session, live_session = SessionStore(), SessionStore()
    old_session.create()
    live_session.create()
    Session.objects.filter(session_key=old_session.session_key).update(expire_date=now - timedelta(days=1))

    result = retention_purge.delay().get()

    assert result == {
        "consent": {"expired data exports deleted": 1, "old preference-center links deleted": 2},
        "tracking": {"events deleted": 1},
        "demo shop": {"expired sessions deleted": 1},
    }
    assert list(Event.objects.values_list("message_id", flat=True)) == ["recent"]
    assert list(ExportRequest.objects.values_list("pk", flat=True)) == [valid.pk]
    assert list(PreferenceLink.objects.values_list("user_id", "revoked_at")) == [("u", None)]
    assert not ExportRequest.objects.filter(pk=expired.pk).exists()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live_session.session_key]
