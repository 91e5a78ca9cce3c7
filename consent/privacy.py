"""The consent app's own personal data: its entry in the personal-data registry."""

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from consent.models import ConsentRecord, ExportRequest, PreferenceLink, RecordUnlock, SubjectLink
from consent.selectors import identity_hashes, preference_links_of, state_key
from consent.subjects import Identities


def _records(identities: Identities) -> Any:
    return ConsentRecord.objects.filter(
        Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids)
    )


def _links(identities: Identities) -> Any:
    return SubjectLink.objects.filter(Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids))


def _exports(identities: Identities) -> Any:
    return ExportRequest.objects.filter(
        Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids)
    )


def subject_export(identities: Identities) -> dict[str, Any]:
    records = _records(identities).select_related("policy_version").order_by("recorded_at", "id")
    return {
        "consent_records": [
            {
                "purpose": r.purpose_id,
                "choice": "granted" if r.granted else "withdrawn",
                "policy_version": r.policy_version.version if r.policy_version else None,
                "source": r.source,
                "recorded_at": r.recorded_at.isoformat(),
                "user_id": r.user_id,
                "anonymous_id": r.anonymous_id,
                "ip_address_truncated": r.ip_address,
                "user_agent": r.user_agent,
                "gpc_signal": r.gpc,
            }
            for r in records
        ],
        "identity_links": [
            {"anonymous_id": link.anonymous_id, "user_id": link.user_id, "linked_at": link.linked_at.isoformat()}
            for link in _links(identities).order_by("linked_at")
        ],
        "preference_center_links": [
            {
                "user_id": link.user_id,
                "anonymous_id": link.anonymous_id,
                "issued_at": link.created_at.isoformat(),
                "expires_at": link.expires_at.isoformat(),
                "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
            }
            for link in preference_links_of(identities).order_by("created_at", "id")
        ],
    }


def subject_erase(identities: Identities) -> dict[str, int]:
    """Consent records lose their identifiers (the proof stays, under a keyed hash); links,
    exports and cached state go. Runs inside the erasure's transaction."""
    unlock = RecordUnlock.objects.create()
    anonymised = _records(identities).strip_identifiers(erased_subject=identity_hashes(identities)[0])
    unlock.delete()
    links, _ = _links(identities).delete()
    exports, _ = _exports(identities).delete()
    preference_links, _ = preference_links_of(identities).delete()  # a deleted link opens nothing
    keys = [state_key("user", u) for u in identities.user_ids] + [
        state_key("anonymous", a) for a in identities.anonymous_ids
    ]
    cache.delete_many(keys)
    return {
        "consent records anonymised": anonymised,
        "identity links deleted": links,
        "data exports deleted": exports,
        "preference-center links deleted": preference_links,
    }


def purge(cutoff: datetime) -> dict[str, int]:
    """Data exports whose download link has expired, and preference-center links that no longer
    open anything (expired or revoked), whatever the retention period."""
    now = timezone.now()
    expired, _ = ExportRequest.objects.filter(expires_at__lt=now).delete()
    old_links, _ = PreferenceLink.objects.filter(Q(expires_at__lt=now) | Q(revoked_at__isnull=False)).delete()
    return {"expired data exports deleted": expired, "old preference-center links deleted": old_links}
