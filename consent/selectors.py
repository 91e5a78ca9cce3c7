"""Reads of the consent app.

``consent_allows`` is on every hot path (ingestion, serving, email), so it answers from the cache:
one round trip for the published policy and the subject's latest choices, no database query once
warm. The database is read only on a cache miss; every write refreshes the cache (see services).
Cache keys are keyed hashes of the ids, so Redis holds no identifiers.
"""

import gzip
import hashlib
import hmac
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache, caches
from django.db.models import Q, QuerySet
from django.utils import timezone

from config import sql
from consent.decisions import Choice, PolicyState, PurposeRule, is_allowed, latest_choices, merge_choices
from consent.models import (
    ConsentRecord,
    ErasureReceipt,
    ExportRequest,
    PolicyVersion,
    PreferenceLink,
    Purpose,
    SubjectLink,
    Suppression,
)
from consent.subjects import Identities, Subject

POLICY_KEY = "consent:policy"
STATE_TIMEOUT = 7 * 24 * 3600


def subject_hash(kind: str, value: str) -> str:
    """A keyed hash of an id (``kind`` is "user" or "anonymous"): the same person gives the same
    hash, but the hash does not give the id back, even for short numeric customer ids."""
    return _keyed_hash(settings.PZ_PRIVACY_HASH_KEY, kind, value)


def hash_key_fingerprint() -> str:
    """A short keyed hash of a constant: tells whether hashes were made with the current
    ``PZ_PRIVACY_HASH_KEY`` (a model version's customers, say) and says nothing of the key."""
    return _keyed_hash(settings.PZ_PRIVACY_HASH_KEY, "fingerprint", "pz")[:16]


@lru_cache(maxsize=131_072)  # the collector asks for the same visitors' keys over and over
def _keyed_hash(key: str, kind: str, value: str) -> str:
    return hmac.new(key.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def identity_hashes(identities: Identities) -> list[str]:
    return sorted(
        [subject_hash("user", u) for u in identities.user_ids]
        + [subject_hash("anonymous", a) for a in identities.anonymous_ids]
    )


def state_key(kind: str, value: str) -> str:
    return _state_key(settings.PZ_PRIVACY_HASH_KEY, kind, value)


@lru_cache(maxsize=131_072)
def _state_key(hash_key: str, kind: str, value: str) -> str:
    return f"consent:subject:{_keyed_hash(hash_key, kind, value)[:40]}"


# --- the published policy ----------------------------------------------------------------------


def current_policy_version() -> PolicyVersion | None:
    return PolicyVersion.objects.filter(published_at__isnull=False).order_by("-version").first()


def policy_blob() -> dict[str, Any]:
    current = current_policy_version()
    renewal = (
        PolicyVersion.objects.filter(published_at__isnull=False, requires_renewal=True).order_by("-version").first()
    )
    return {
        "version": current.version if current else None,
        "renewal_from": renewal.version if renewal else None,
        "purposes": {p.key: [p.is_required, list(p.opt_out_jurisdictions)] for p in Purpose.objects.all()},
    }


def _policy_from(blob: dict[str, Any]) -> PolicyState:
    rules = {key: PurposeRule(required, tuple(codes)) for key, (required, codes) in blob["purposes"].items()}
    return PolicyState(version=blob["version"], renewal_from=blob["renewal_from"], purposes=rules)


def policy_state() -> PolicyState:
    blob = cache.get(POLICY_KEY)
    if blob is None:
        blob = policy_blob()
        cache.set(POLICY_KEY, blob, STATE_TIMEOUT)
    return _policy_from(blob)


def purposes_for_display() -> QuerySet[Purpose]:
    return Purpose.objects.order_by("position", "key")


# --- identities --------------------------------------------------------------------------------


def linked_user(anonymous_id: str) -> str | None:
    """The user an anonymous id was last linked to (identity stitching), if any."""
    return linked_users([anonymous_id]).get(anonymous_id)


_LATEST_LINKS_SQL = (
    "SELECT DISTINCT ON (anonymous_id) anonymous_id, user_id FROM consent_subjectlink "
    "WHERE anonymous_id = ANY(%s) ORDER BY anonymous_id, linked_at DESC, id DESC"
)


def linked_users(anonymous_ids: Iterable[str]) -> dict[str, str]:
    """``{anonymous id: user id}`` for those linked to a user (the latest link of each)."""
    if sql.postgres():  # the consumer asks this for thousands of ids per batch: one bound array
        return dict(sql.fetch_all(_LATEST_LINKS_SQL, (list(anonymous_ids),)))
    latest: dict[str, str] = {}
    links = SubjectLink.objects.filter(anonymous_id__in=list(anonymous_ids)).order_by("anonymous_id", "linked_at", "id")
    for anonymous_id, user_id in links.values_list("anonymous_id", "user_id"):
        latest[anonymous_id] = user_id
    return latest


def identities_for(subject: Subject) -> Identities:
    """Every id of the person: their user id (given, or linked from the anonymous id) and the
    anonymous ids linked to it."""
    return identities_of_many([subject])[subject]


def preference_links_of(identities: Identities) -> QuerySet[PreferenceLink]:
    """Every link to the person's preference center, working or not."""
    return PreferenceLink.objects.filter(
        Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids)
    )


def subject_records(identities: Identities) -> QuerySet[ConsentRecord]:
    """Every consent record of the person, newest first."""
    condition = Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids, user_id="")
    return ConsentRecord.objects.filter(condition).select_related("purpose", "policy_version")


# --- a subject's state, cached -----------------------------------------------------------------


def load_state_blob(identities: Identities) -> dict[str, Any]:
    """The cacheable state of a person: latest choice per purpose and whether they are suppressed."""
    return state_blobs_of_many([identities])[identities]


def identities_of_many(subjects: Sequence[Subject]) -> dict[Subject, Identities]:
    """The identities of many subjects, in two queries (see ``identities_for``)."""
    links = linked_users({s.anonymous_id for s in subjects if s.anonymous_id and not s.user_id})
    user_ids = {s.user_id or links.get(s.anonymous_id, "") for s in subjects} - {""}
    latest: dict[str, str] = {}
    if user_ids:
        candidates = SubjectLink.objects.filter(
            anonymous_id__in=SubjectLink.objects.filter(user_id__in=user_ids).values("anonymous_id")
        ).order_by("anonymous_id", "linked_at", "id")
        latest = dict(candidates.values_list("anonymous_id", "user_id"))  # the latest link of each wins
    anonymous_of: defaultdict[str, set[str]] = defaultdict(set)
    for anonymous_id, user_id in latest.items():
        anonymous_of[user_id].add(anonymous_id)
    identities = {}
    for subject in subjects:
        user_id = subject.user_id or links.get(subject.anonymous_id, "")
        anonymous_ids = ({subject.anonymous_id} - {""}) | (anonymous_of[user_id] if user_id else set())
        identities[subject] = Identities(user_ids=frozenset({user_id} - {""}), anonymous_ids=frozenset(anonymous_ids))
    return identities


_CHOICE_FIELDS = ("purpose_id", "granted", "recorded_at", "policy_version__version", "source", "gpc")


def state_blobs_of_many(people: Iterable[Identities]) -> dict[Identities, dict[str, Any]]:
    """The cacheable state of many people, in two queries (see ``load_state_blob``)."""
    wanted = list(dict.fromkeys(people))
    user_ids = {user_id for person in wanted for user_id in person.user_ids}
    anonymous_ids = {anonymous_id for person in wanted for anonymous_id in person.anonymous_ids}
    rows = (
        ConsentRecord.objects.filter(Q(user_id__in=user_ids) | Q(anonymous_id__in=anonymous_ids, user_id=""))
        .order_by("recorded_at", "id")
        .values_list("user_id", "anonymous_id", *_CHOICE_FIELDS)
    )
    by_user: defaultdict[str, list[tuple[int, str, Choice]]] = defaultdict(list)
    by_anonymous: defaultdict[str, list[tuple[int, str, Choice]]] = defaultdict(list)
    for position, (user_id, anonymous_id, purpose, granted, recorded_at, version, source, gpc) in enumerate(rows):
        entry = (position, str(purpose), Choice(granted, recorded_at.isoformat(), version, source, gpc))
        (by_user[user_id] if user_id else by_anonymous[anonymous_id]).append(entry)
    hashes = {person: identity_hashes(person) for person in wanted}
    erased = set(
        Suppression.objects.filter(subject_hash__in={h for each in hashes.values() for h in each}).values_list(
            "subject_hash", flat=True
        )
    )
    states = {}
    for person in wanted:
        entries = [entry for user_id in person.user_ids for entry in by_user[user_id]]
        entries += [entry for anonymous_id in person.anonymous_ids for entry in by_anonymous[anonymous_id]]
        entries.sort(key=lambda entry: entry[0])
        choices = latest_choices((purpose, choice) for _, purpose, choice in entries)
        states[person] = {
            "choices": {purpose: choice.as_list() for purpose, choice in choices.items()},
            "suppressed": any(h in erased for h in hashes[person]),
        }
    return states


def _blob_for(kind: str, value: str, cached: dict[str, Any]) -> dict[str, Any]:
    """The state blob of one id, from ``cached`` or loaded (and cached) on a miss. An anonymous id
    linked to a user holds only the (hashed) key of the user's blob."""
    blob: dict[str, Any] | None = cached.get(state_key(kind, value))
    if blob is not None and "alias" in blob:
        aliased: dict[str, Any] | None = cached.get(blob["alias"]) or cache.get(blob["alias"])
        if aliased is not None:
            return aliased
    elif blob is not None:
        return blob
    subject = Subject(user_id=value) if kind == "user" else Subject(anonymous_id=value)
    identities = identities_for(subject)
    state = load_state_blob(identities)
    if kind == "anonymous" and identities.user_ids:
        (user_id,) = identities.user_ids
        cache.set_many(
            {state_key(kind, value): {"alias": state_key("user", user_id)}, state_key("user", user_id): state},
            STATE_TIMEOUT,
        )
    else:
        cache.set(state_key(kind, value), state, STATE_TIMEOUT)
    return state


def _ids(subject: Subject) -> list[tuple[str, str]]:
    return ([("user", subject.user_id)] if subject.user_id else []) + (
        [("anonymous", subject.anonymous_id)] if subject.anonymous_id else []
    )


# A cached state, decoded: (latest choice per purpose, suppressed), or the key of the state an
# anonymous id linked to a user points at. Shared between calls (memoised): never mutate one.
State = tuple[Mapping[str, Choice], bool]


def _state_of(blob: Mapping[str, Any]) -> State | str:
    return str(blob["alias"]) if "alias" in blob else _choices_of(blob)


def _choices_of(blob: Mapping[str, Any]) -> State:
    return {p: Choice.from_list(values) for p, values in blob["choices"].items()}, bool(blob["suppressed"])


@lru_cache(maxsize=16_384)
def _state_from_bytes(value: bytes) -> State | str:
    """Most visitors' states are byte for byte the same (no choice yet), and a visitor's own is read
    again with each of their events: decoding each distinct value once saves the collector ~2 µs an
    event."""
    return _state_of(caches["default"].loads(value))  # type: ignore[attr-defined]


@lru_cache(maxsize=64)
def _policy_from_bytes(value: bytes) -> PolicyState:
    return _policy_from(caches["default"].loads(value))  # type: ignore[attr-defined]


# What this process last read under each consent key (Redis only), so that the collector can decide
# before reading again (``consent_gate_foreseen``). Only ever a guess: the append that follows such
# a decision checks in Redis, atomically, that every value is still the one it was made on.
_last_read: dict[str, bytes] = {}


def _cached_states(
    keys: list[str], along: Sequence[str] = (), read: list[bytes | None] | None = None
) -> tuple[PolicyState | None, dict[str, State | str]]:
    """The cached policy (``POLICY_KEY`` comes first in ``keys``) and the cached states among the
    others, decoded, in one round trip. On Redis, the stored bytes are read and their decoding is
    memoised; other backends (the embedded local-memory cache) go through ``get_many``.
    ``along``: other keys read in the same round trip, their stored bytes added to ``read``."""
    read_raw = getattr(caches["default"], "get_many_raw", None)
    if read_raw is not None:
        values = read_raw([*keys, *along])
        if along and read is not None:
            read.extend(values[len(keys) :])
        values = values[: len(keys)]
        if len(_last_read) > 100_000:
            _last_read.clear()
        for key, value in zip(keys, values, strict=True):
            if value is None:
                _last_read.pop(key, None)
            else:
                _last_read[key] = value
        policy = _policy_from_bytes(values[0]) if values[0] is not None else None
        return policy, {
            key: _state_from_bytes(value) for key, value in zip(keys[1:], values[1:], strict=True) if value is not None
        }
    found = cache.get_many(keys)
    blob = found.pop(POLICY_KEY, None)
    return (_policy_from(blob) if blob is not None else None), {key: _state_of(b) for key, b in found.items()}


def _state_for(kind: str, value: str, key: str, found: Mapping[str, State | str]) -> State:
    """The state of one id from ``found``, following an alias; loaded (and cached) on a miss."""
    entry = found.get(key)
    if isinstance(entry, str):
        aliased = found.get(entry)
        if aliased is None:
            aliased = _cached_states([POLICY_KEY, entry])[1].get(entry)
        if aliased is not None and not isinstance(aliased, str):
            return aliased
    elif entry is not None:
        return entry
    return _choices_of(_blob_for(kind, value, {}))  # a loaded blob is a state, never an alias


def _keys_of(subjects: Iterable[Subject]) -> dict[Subject, list[tuple[str, str, str]]]:
    hash_key = settings.PZ_PRIVACY_HASH_KEY
    return {
        subject: [(kind, value, _state_key(hash_key, kind, value)) for kind, value in _ids(subject)]
        for subject in dict.fromkeys(subjects)
    }


def _merged(parts: list[State]) -> State:
    """One person's state from those of their ids."""
    if len(parts) == 1:
        return parts[0]
    return merge_choices(*(choices for choices, _ in parts)), any(suppressed for _, suppressed in parts)


def subject_states(
    subjects: Iterable[Subject], *, along: Sequence[str] = (), read: list[bytes | None] | None = None
) -> tuple[PolicyState, dict[Subject, State]]:
    """The published policy and, per subject, their latest choices and whether they are suppressed:
    one cache round trip for all of them (the collector asks for a whole batch at once). On Redis,
    the bytes under the cache keys ``along`` are read in the same round trip, into ``read`` (the
    recommendation API reads a visitor's live profile with their consent)."""
    ids = _keys_of(subjects)
    keys = [POLICY_KEY, *(key for each in ids.values() for _, _, key in each)]
    policy, found = _cached_states(keys, along, read)
    if policy is None:
        blob = policy_blob()
        cache.set(POLICY_KEY, blob, STATE_TIMEOUT)
        policy = _policy_from(blob)
    states = {
        subject: _merged([_state_for(kind, value, key, found) for kind, value, key in keys])
        for subject, keys in ids.items()
    }
    return policy, states


def subject_state(
    subject: Subject, *, along: Sequence[str] = (), read: list[bytes | None] | None = None
) -> tuple[PolicyState, Mapping[str, Choice], bool]:
    """The published policy, the person's latest choices and whether they are suppressed (and, on
    Redis, the bytes under ``along`` into ``read``: see ``subject_states``)."""
    policy, states = subject_states([subject], along=along, read=read)
    choices, suppressed = states[subject]
    return policy, choices, suppressed


@dataclass(frozen=True)
class Gate:
    allowed: bool
    suppressed: bool
    withdrawn: bool  # the person's own latest choice refuses the purpose (not just the default)


def _gates(policy: PolicyState, states: Mapping[Subject, State], purpose: str) -> dict[Subject, Gate]:
    gates = {}
    known: dict[tuple[int, bool], Gate] = {}  # most subjects share one decoded state (no choice yet)
    for subject, (choices, suppressed) in states.items():
        gate = known.get((id(choices), suppressed))
        if gate is None:
            choice = choices.get(purpose)
            gate = known[(id(choices), suppressed)] = Gate(
                allowed=is_allowed(purpose, policy=policy, choices=choices, suppressed=suppressed),
                suppressed=suppressed,
                withdrawn=choice is not None and not choice.granted,
            )
        gates[subject] = gate
    return gates


def consent_gate(subjects: Iterable[Subject], purpose: str) -> dict[Subject, Gate]:
    """The answer for a purpose for many subjects, in one cache round trip."""
    policy, states = subject_states(subjects)
    return _gates(policy, states, purpose)


@dataclass(frozen=True)
class ForeseenGates:
    """``consent_gate``'s answer as of the values this process last read, and those values under
    their Redis keys: whoever acts on the answer must check, atomically with the action, that the
    keys still hold them (``tracking.ingestion`` does, in the script that appends the events)."""

    gates: dict[Subject, Gate]
    expected: dict[str, bytes]


def consent_gate_foreseen(subjects: Iterable[Subject], purpose: str) -> ForeseenGates | None:
    """``consent_gate`` without a round trip, from what this process last read for each of the
    subjects' ids (and the policy); None if one was never read here, or links to another id."""
    backend = caches["default"]
    if not hasattr(backend, "get_many_raw"):
        return None
    ids = _keys_of(subjects)
    read: dict[str, bytes] = {}
    for key in [POLICY_KEY, *(key for each in ids.values() for _, _, key in each)]:
        value = _last_read.get(key)
        if value is None:
            return None
        read[key] = value
    found: dict[str, State] = {}
    for key, value in read.items():
        state = _state_from_bytes(value) if key != POLICY_KEY else None
        if isinstance(state, str):
            return None  # an alias: the state it points at is read with the alias
        if state is not None:
            found[key] = state
    states = {subject: _merged([found[key] for _, _, key in each]) for subject, each in ids.items()}
    return ForeseenGates(
        gates=_gates(_policy_from_bytes(read[POLICY_KEY]), states, purpose),
        expected={backend.make_key(key): value for key, value in read.items()},
    )


def consent_allows(
    *,
    subject: Subject,
    purpose: str,
    jurisdiction: str | None = None,
    along: Sequence[str] = (),
    read: list[bytes | None] | None = None,
) -> bool:
    """Has this person allowed this purpose? See ``consent.decisions`` for the rules. On Redis, the
    bytes under the cache keys ``along`` are read in the same round trip, into ``read``."""
    policy, choices, suppressed = subject_state(subject, along=along, read=read)
    return is_allowed(purpose, policy=policy, choices=choices, suppressed=suppressed, jurisdiction=jurisdiction)


def consent_allows_each(
    subjects: Iterable[Subject], purpose: str, *, jurisdictions: Mapping[Subject, str] | None = None
) -> set[Subject]:
    """Which of a few people allow a purpose: ``consent_allows`` for each, from the cache in one
    round trip (a worker deciding for a small batch, as the collector does for a request's)."""
    wanted = list(dict.fromkeys(subjects))
    if not wanted:
        return set()
    policy, states = subject_states(wanted)
    return {
        subject
        for subject in wanted
        if is_allowed(
            purpose,
            policy=policy,
            choices=states[subject][0],
            suppressed=states[subject][1],
            jurisdiction=(jurisdictions or {}).get(subject) or None,
        )
    }


def subjects_allowing(
    subjects: Iterable[Subject], purpose: str, *, jurisdictions: Mapping[Subject, str] | None = None
) -> set[Subject]:
    """Which of many people allow a purpose: the same answer as ``consent_allows`` for each, read
    from the database in a few queries whatever their number (for batch work such as building a
    training set, where warming the cache person by person would cost a query or two each)."""
    wanted = list(dict.fromkeys(subjects))
    if not wanted:
        return set()
    policy = _policy_from(policy_blob())
    identities = {}
    for start in range(0, len(wanted), 5000):
        identities.update(identities_of_many(wanted[start : start + 5000]))
    states: dict[Identities, dict[str, Any]] = {}
    people = list(dict.fromkeys(identities.values()))
    for start in range(0, len(people), 5000):
        states.update(state_blobs_of_many(people[start : start + 5000]))
    allowed = set()
    for subject in wanted:
        state = states[identities[subject]]
        choices = {p: Choice.from_list(values) for p, values in state["choices"].items()}
        jurisdiction = (jurisdictions or {}).get(subject) or None
        if is_allowed(
            purpose, policy=policy, choices=choices, suppressed=state["suppressed"], jurisdiction=jurisdiction
        ):
            allowed.add(subject)
    return allowed


def subject_suppressed(subject: Subject) -> bool:
    """Was this person erased (and has not consented since)? Their late events are dropped."""
    return subject_state(subject)[2]


def consent_summary(subject: Subject, jurisdiction: str | None = None) -> dict[str, Any]:
    """The state per purpose, for the API and the preference center."""
    policy, choices, suppressed = subject_state(subject)
    purposes = {}
    for key in policy.purposes:
        choice = choices.get(key)
        purposes[key] = {
            "allowed": is_allowed(
                key, policy=policy, choices=choices, suppressed=suppressed, jurisdiction=jurisdiction
            ),
            "choice": None if choice is None else ("granted" if choice.granted else "withdrawn"),
            "chosen_at": choice.recorded_at if choice else None,
            "policy_version": choice.policy_version if choice else None,
            "source": choice.source if choice else None,
        }
    answered = [c.policy_version or 0 for k, c in choices.items() if k in policy.purposes]
    needs_prompt = policy.version is not None and (not answered or max(answered) < policy.version)
    return {
        "policy_version": policy.version,
        "needs_prompt": needs_prompt,
        "suppressed": suppressed,
        "purposes": purposes,
    }


# --- exports and receipts ----------------------------------------------------------------------


def recent_exports(subject: Subject) -> QuerySet[ExportRequest]:
    """The person's export requests of the last two days, newest first (their links last a day)."""
    since = timezone.now() - timedelta(days=2)
    return ExportRequest.objects.filter(
        user_id=subject.user_id, anonymous_id=subject.anonymous_id, created_at__gte=since
    ).defer("content")[:5]


def export_content(export_id: UUID) -> bytes | None:
    """The JSON of a built export whose link has not expired."""
    export = ExportRequest.objects.filter(
        pk=export_id, status=ExportRequest.Status.READY, expires_at__gt=timezone.now()
    ).first()
    if export is None or export.content is None:
        return None
    return gzip.decompress(bytes(export.content))


def erasure_receipt(receipt_id: str) -> ErasureReceipt | None:
    return ErasureReceipt.objects.filter(pk=receipt_id).first()
