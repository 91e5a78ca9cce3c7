"""Links to a person's preference center (opaque, expiring, revocable: ``PreferenceLink``) and to
their data export (signed, expiring)."""

import hashlib
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from consent.models import PolicyVersion, PreferenceLink
from consent.subjects import Subject

EXPORT_SALT = "consent.export-download"


class InvalidLink(Exception):
    """Tampered with, revoked, or not one of ours."""


class ExpiredLink(Exception):
    pass


def preference_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def preference_path(token: str) -> str:
    return reverse("privacy:preferences", kwargs={"token": token})


def subject_from_preference_token(token: str) -> Subject:
    """The subject a preference-center link was issued for; ``InvalidLink`` (unknown or revoked)
    or ``ExpiredLink`` otherwise. The token says nothing itself: only the table knows whose it is."""
    found = PreferenceLink.objects.filter(token_digest=preference_token_digest(token)).first()
    if found is None or found.revoked_at is not None:
        raise InvalidLink
    if found.expires_at <= timezone.now():
        raise ExpiredLink
    return Subject(user_id=found.user_id, anonymous_id=found.anonymous_id)


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
