"""Writes of the consent app: choices, GPC signals, identity links, policy versions.

Every write refreshes the cached state of the person after the transaction commits, so that
``consent_allows`` answers the next question from the cache with the new answer.
"""

import gzip
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from config.client_address import truncate_ip
from consent.exceptions import ConsentError
from consent.links import preference_path, preference_token_digest
from consent.models import (
    ConsentRecord,
    ErasureReceipt,
    ExportRequest,
    PolicyVersion,
    PreferenceLink,
    Purpose,
    StaffAccessLog,
    SubjectLink,
    Suppression,
)
from consent.registry import personal_data_stores
from consent.selectors import (
    POLICY_KEY,
    STATE_TIMEOUT,
    identities_for,
    identities_of_many,
    identity_hashes,
    linked_user,
    load_state_blob,
    policy_blob,
    policy_state,
    preference_links_of,
    state_blobs_of_many,
    state_key,
    subject_state,
)
from consent.subjects import Identities, Subject
from consent.suppression import writers_hold_off

USER_AGENT_LENGTH = 512


def refresh_policy_cache() -> None:
    """Rebuild the cached policy (after a publication or a change of purposes)."""
    cache.set(POLICY_KEY, policy_blob(), STATE_TIMEOUT)


def _cache_entries(identities: Identities, state: Mapping[str, Any]) -> dict[str, object]:
    """The cache entries of a person's state: under the user id, with their anonymous ids pointing
    at it; or under the anonymous ids of someone not (yet) known."""
    if identities.user_ids:
        (user_id,) = identities.user_ids
        user_key = state_key("user", user_id)
        return {user_key: state, **{state_key("anonymous", a): {"alias": user_key} for a in identities.anonymous_ids}}
    return {state_key("anonymous", a): state for a in identities.anonymous_ids}


def refresh_subject_cache(identities: Identities) -> None:
    """Recompute the person's state from the database and cache it under each of their ids (and
    the policy, if it is not cached), so that the next ``consent_allows`` needs no query."""
    policy_state()
    cache.set_many(_cache_entries(identities, load_state_blob(identities)), STATE_TIMEOUT)


def _refresh_after_commit(subject: Subject) -> None:
    """Forget the cached state now (a read inside this transaction reloads it with the new rows),
    and cache the committed state once the transaction commits."""
    keys = [state_key("user", subject.user_id)] if subject.user_id else []
    keys += [state_key("anonymous", subject.anonymous_id)] if subject.anonymous_id else []
    cache.delete_many(keys)
    transaction.on_commit(lambda: refresh_subject_cache(identities_for(subject)))


def _policy_version(number: int | None) -> PolicyVersion | None:
    published = PolicyVersion.objects.filter(published_at__isnull=False)
    if number is None:
        return published.order_by("-version").first()
    version = published.filter(version=number).first()
    if version is None:
        raise ConsentError("policyVersion", f"there is no published policy version {number}")
    return version


@transaction.atomic
def consent_record(
    *,
    subject: Subject,
    choices: Mapping[str, bool],
    source: str,
    policy_version: int | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    gpc: bool = False,
    recorded_at: datetime | None = None,
) -> list[ConsentRecord]:
    """Record a person's choices, one record per purpose. Required purposes are always on: a grant
    of one is not recorded, a refusal is an error. A grant lifts an erasure's suppression."""
    if source not in ConsentRecord.Source.values:
        raise ConsentError("source", f"must be one of {', '.join(ConsentRecord.Source.values)}")
    purposes = {p.key: p for p in Purpose.objects.filter(key__in=list(choices))}
    for key, granted in choices.items():
        if key not in purposes:
            raise ConsentError(f"choices.{key}", "is not a consent purpose")
        if purposes[key].is_required and not granted:
            raise ConsentError(f"choices.{key}", "is required for the shop to work and cannot be refused")
    version = _policy_version(policy_version)
    if subject.user_id and subject.anonymous_id:
        subject_link(anonymous_id=subject.anonymous_id, user_id=subject.user_id, source=source)
    when = recorded_at or timezone.now()
    records = ConsentRecord.objects.bulk_create(
        ConsentRecord(
            user_id=subject.user_id,
            anonymous_id=subject.anonymous_id,
            purpose_id=key,
            granted=granted,
            policy_version=version,
            source=source,
            recorded_at=when,
            ip_address=truncate_ip(ip_address),
            user_agent=user_agent[:USER_AGENT_LENGTH],
            gpc=gpc,
        )
        for key, granted in choices.items()
        if not purposes[key].is_required
    )
    if any(record.granted for record in records):
        Suppression.objects.filter(subject_hash__in=identity_hashes(identities_for(subject))).delete()
    _refresh_after_commit(subject)
    return records


def consent_apply_gpc(*, subject: Subject, ip_address: str | None = None, user_agent: str = "") -> list[ConsentRecord]:
    """Honour a Global Privacy Control signal as an opt-out of sale and sharing.

    Withdraws the purposes of ``PZ_GPC_WITHDRAWS`` (default: marketing), recorded with source
    "gpc", unless the person's latest choice for one already is a withdrawal, or is a grant they
    made while their browser was sending GPC (an explicit opt-in after the signal, which wins).
    Costs no database query when there is nothing to record.
    """
    _, choices, _ = subject_state(subject)
    to_withdraw = [
        purpose
        for purpose in settings.PZ_GPC_WITHDRAWS
        if purpose not in choices or (choices[purpose].granted and not choices[purpose].gpc)
    ]
    if not to_withdraw:
        return []
    return consent_record(
        subject=subject,
        choices=dict.fromkeys(to_withdraw, False),
        source=ConsentRecord.Source.GPC,
        ip_address=ip_address,
        user_agent=user_agent,
        gpc=True,
    )


# --- imported consent --------------------------------------------------------------------------

IMPORT_CHUNK = 1000  # subjects per query: well under SQLite's limit of parameters in one statement


@dataclass(frozen=True)
class ConsentImportResult:
    recorded: int  # grants recorded now, one per person
    already_chosen: int  # subjects whose person had made a choice for the purpose: left as they chose
    suppressed: int  # erased subjects: an import does not lift an erasure


def _refresh_subjects_cache(subjects: Sequence[Subject]) -> None:
    """``refresh_subject_cache`` for many subjects: a few queries per thousand, one cache write."""
    policy_state()
    entries: dict[str, object] = {}
    for start in range(0, len(subjects), IMPORT_CHUNK):
        identities = identities_of_many(subjects[start : start + IMPORT_CHUNK])
        for person, state in state_blobs_of_many(identities.values()).items():
            entries.update(_cache_entries(person, state))
    cache.set_many(entries, STATE_TIMEOUT)


@transaction.atomic
def consent_bulk_import(
    *, subjects: Iterable[Subject], purpose: str, recorded_at: datetime | None = None
) -> ConsentImportResult:
    """Record a grant of ``purpose`` with source "import" for each person who has made no choice
    for it: for data collected elsewhere, with consent as the operator asserts (a replay of a data
    set, a move from another platform). One record per person, under the published policy.

    It never overrides a choice: someone who withdrew stays withdrawn, and someone erased stays
    suppressed (a grant the person makes lifts an erasure; an import does not). Running it again
    records nothing. A few queries per thousand subjects, where ``consent_record`` costs about
    nine per subject; the cache holds the new state once the transaction commits, and reads
    inside the transaction reload it from the database.
    """
    target = Purpose.objects.filter(key=purpose).first()
    if target is None:
        raise ConsentError("purpose", f"{purpose!r} is not a consent purpose")
    if target.is_required:
        raise ConsentError("purpose", f"{purpose!r} is required for the shop to work: there is no consent to import")
    version = _policy_version(None)
    when = recorded_at or timezone.now()
    wanted = list(dict.fromkeys(subjects))
    granted: dict[Identities, Subject] = {}
    already_chosen = suppressed = 0
    for start in range(0, len(wanted), IMPORT_CHUNK):
        chunk = wanted[start : start + IMPORT_CHUNK]
        identities = identities_of_many(chunk)
        states = state_blobs_of_many(identities.values())
        records = []
        for subject in chunk:
            person, state = identities[subject], states[identities[subject]]
            if state["suppressed"]:
                suppressed += 1
            elif purpose in state["choices"]:
                already_chosen += 1
            elif person not in granted:
                granted[person] = subject
                records.append(
                    ConsentRecord(
                        user_id=subject.user_id,
                        anonymous_id=subject.anonymous_id,
                        purpose=target,
                        granted=True,
                        policy_version=version,
                        source=ConsentRecord.Source.IMPORT,
                        recorded_at=when,
                    )
                )
        ConsentRecord.objects.bulk_create(records)
    people = list(granted)
    cache.delete_many(
        [state_key("user", u) for person in people for u in person.user_ids]
        + [state_key("anonymous", a) for person in people for a in person.anonymous_ids]
    )
    subjects_granted = list(granted.values())
    transaction.on_commit(lambda: _refresh_subjects_cache(subjects_granted))
    return ConsentImportResult(recorded=len(granted), already_chosen=already_chosen, suppressed=suppressed)


@transaction.atomic
def subject_link(*, anonymous_id: str, user_id: str, source: str) -> SubjectLink | None:
    """Record that an anonymous visitor is a known user (identity stitching). From then on both ids
    answer with the person's merged choices, the most recent explicit choice winning per purpose."""
    previous = linked_user(anonymous_id)
    if previous == user_id:
        return None
    link = SubjectLink.objects.create(
        anonymous_id=anonymous_id, user_id=user_id, linked_at=timezone.now(), source=source
    )
    _refresh_after_commit(Subject(user_id=user_id, anonymous_id=anonymous_id))
    if previous:
        _refresh_after_commit(Subject(user_id=previous))
    return link


@transaction.atomic
def policy_version_publish(*, policy_version: PolicyVersion, published_by: User | None) -> PolicyVersion:
    """Publish a policy version: the banner asks again everyone who chose under an older one."""
    if policy_version.published_at is not None:
        raise ConsentError("policy_version", f"version {policy_version.version} is published already")
    newest = PolicyVersion.objects.filter(published_at__isnull=False).order_by("-version").first()
    if newest is not None and newest.version >= policy_version.version:
        raise ConsentError("version", f"must be above the published version {newest.version}")
    if not policy_version.purposes.exists():
        raise ConsentError("purposes", "a policy version must cover at least one purpose")
    policy_version.published_at = timezone.now()
    policy_version.published_by = published_by
    policy_version.save(update_fields=["published_at", "published_by"])
    transaction.on_commit(refresh_policy_cache)
    return policy_version


def purposes_changed() -> None:
    """Call after editing purposes (defaults, required flag): the cached policy is rebuilt."""
    transaction.on_commit(refresh_policy_cache)


# --- erasure and export ------------------------------------------------------------------------


def staff_access_record(*, staff: User | None, action: str, identities: Identities, what: str) -> None:
    """Audit a staff member's access to someone's personal data (kept by keyed hash, not by id)."""
    if staff is None or not staff.is_authenticated:
        return
    hashes = identity_hashes(identities)
    StaffAccessLog.objects.create(
        staff=staff,
        staff_username=staff.get_username(),
        action=action,
        subject_hash=hashes[0] if hashes else "",
        what=what[:200],
    )


def subject_erase(*, subject: Subject, requested_via: str, requested_by: User | None = None) -> ErasureReceipt:
    """Erase a person from every registered store and keep a receipt and a suppression entry
    (hashes only) so that their late events are dropped.

    Two transactions. The first records the suppression while the writers of personal data are
    held off (``consent.suppression``): a batch of events processed from then on drops theirs, and
    one that was being processed has committed. The second erases every store, so it finds what
    such a batch wrote. Should the second fail, the person stays suppressed, with no receipt:
    asked again, the erasure completes."""
    with transaction.atomic():
        writers_hold_off()
        identities = identities_for(subject)  # read under the lock: links a batch just made included
        Suppression.objects.bulk_create(
            [Suppression(subject_hash=h) for h in identity_hashes(identities)], ignore_conflicts=True
        )
    _cache_suppressed(identities)
    with transaction.atomic():
        identities = identities_for(subject)
        hashes = identity_hashes(identities)
        removed = {store.name: store.erase(identities) for store in personal_data_stores()}
        Suppression.objects.bulk_create([Suppression(subject_hash=h) for h in hashes], ignore_conflicts=True)
        receipt = ErasureReceipt.objects.create(
            subject_hashes=hashes,
            requested_via=requested_via,
            requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
            completed_at=timezone.now(),
            removed=removed,
        )
        staff_access_record(
            staff=requested_by, action=StaffAccessLog.Action.ERASE, identities=identities, what="all stores"
        )
    _cache_suppressed(identities)
    return receipt


def _cache_suppressed(identities: Identities) -> None:
    """Cache the person's state as suppressed under each of their ids: the collector drops their events."""
    keys = [state_key("user", u) for u in identities.user_ids] + [
        state_key("anonymous", a) for a in identities.anonymous_ids
    ]
    suppressed = {"choices": {}, "suppressed": True}
    cache.set_many(dict.fromkeys(keys, suppressed), STATE_TIMEOUT)


def export_request_create(*, subject: Subject, requested_via: str, requested_by: User | None = None) -> ExportRequest:
    """Ask for a copy of everything the platform holds about a person; a Celery task builds it."""
    from consent.tasks import subject_export_build  # the task module imports these services

    export = ExportRequest.objects.create(
        user_id=subject.user_id, anonymous_id=subject.anonymous_id, requested_via=requested_via
    )
    staff_access_record(
        staff=requested_by, action=StaffAccessLog.Action.EXPORT, identities=identities_for(subject), what="all stores"
    )
    transaction.on_commit(lambda: subject_export_build.delay(str(export.pk)))
    return export


def export_build(*, export_id: UUID) -> None:
    """Build the export's JSON (gzipped, in the database). Safe to run twice: a built one is left."""
    export = ExportRequest.objects.filter(pk=export_id, status=ExportRequest.Status.PENDING).first()
    if export is None:
        return
    identities = identities_for(Subject(user_id=export.user_id, anonymous_id=export.anonymous_id))
    document = {
        "generated_at": timezone.now().isoformat(),
        "subject": {"user_ids": sorted(identities.user_ids), "anonymous_ids": sorted(identities.anonymous_ids)},
        "stores": {store.name: store.export(identities) for store in personal_data_stores()},
    }
    content = json.dumps(document, indent=2, ensure_ascii=False).encode()
    export.content = gzip.compress(content)
    export.size_bytes = len(content)
    export.status = ExportRequest.Status.READY
    export.completed_at = timezone.now()
    export.expires_at = export.completed_at + timedelta(seconds=settings.PZ_EXPORT_LINK_MAX_AGE)
    export.save(update_fields=["content", "size_bytes", "status", "completed_at", "expires_at"])


def retention_purge(*, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Delete raw behavioural data older than ``PZ_RETENTION_DAYS`` from every store that has some."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PZ_RETENTION_DAYS)
    return {store.name: store.purge(cutoff) for store in personal_data_stores() if store.purge is not None}


@transaction.atomic
def preference_link_issue(*, subject: Subject, max_age: int | None = None) -> tuple[str, datetime]:
    """A new link to the person's preference center (its path, and when it stops working); the
    person's older links stop working now."""
    preference_links_revoke(subject=subject)
    token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=max_age or settings.PZ_PREFERENCE_LINK_MAX_AGE)
    PreferenceLink.objects.create(
        token_digest=preference_token_digest(token),
        user_id=subject.user_id,
        anonymous_id=subject.anonymous_id,
        expires_at=expires_at,
    )
    return preference_path(token), expires_at


def preference_links_revoke(*, subject: Subject) -> int:
    """Revoke every working link to the person's preference center (any of their linked ids)."""
    working = preference_links_of(identities_for(subject)).filter(revoked_at__isnull=True)
    return working.update(revoked_at=timezone.now())
