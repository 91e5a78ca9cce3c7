"""Signed, expiring links: to a person's preference center, and to their data export."""

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from consent.models import PolicyVersion
from consent.subjects import Subject

PREFERENCE_SALT = "consent.preference-center"
EXPORT_SALT = "consent.export-download"


class InvalidLink(Exception):
    """Tampered with, or not one of ours."""


class ExpiredLink(Exception):
    pass


def preference_token(subject: Subject, expires_at: datetime) -> str:
    payload = {"u": subject.user_id, "a": subject.anonymous_id, "e": int(expires_at.timestamp())}
    return signing.dumps(payload, salt=PREFERENCE_SALT, compress=True)


def preference_link(subject: Subject, max_age: int | None = None) -> tuple[str, datetime]:
    """The path of a person's preference center, and when the link stops working."""
    expires_at = timezone.now() + timedelta(seconds=max_age or settings.PZ_PREFERENCE_LINK_MAX_AGE)
    path = reverse("privacy:preferences", kwargs={"token": preference_token(subject, expires_at)})
    return path, expires_at


def subject_from_preference_token(token: str) -> Subject:
    """The subject a preference-center link was made for; ``InvalidLink`` or ``ExpiredLink`` otherwise."""
    try:
        data = signing.loads(token, salt=PREFERENCE_SALT)
        subject = Subject(user_id=data["u"], anonymous_id=data["a"])
        expires = int(data["e"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidLink from exc
    if expires < timezone.now().timestamp():
        raise ExpiredLink
    return subject


def export_download_path(export_id: UUID) -> str:
    token = signing.dumps(str(export_id), salt=EXPORT_SALT)
    return reverse("privacy:export-download", kwargs={"token": token})


def export_id_from_token(token: str) -> UUID:
    try:
        return UUID(signing.loads(token, salt=EXPORT_SALT, max_age=settings.PZ_EXPORT_LINK_MAX_AGE))
    except signing.SignatureExpired as exc:
        raise ExpiredLink from exc
    except (signing.BadSignature, ValueError) as exc:
        raise InvalidLink from exc


def policy_url(request: HttpRequest, version: PolicyVersion | None) -> str:
    """Where a policy can be read: the shop's own URL, or the platform's page with its text."""
    if version is None:
        return ""
    return version.url or request.build_absolute_uri(reverse("privacy:policy"))
