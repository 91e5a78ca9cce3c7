"""Ingestion at the edge: validate, enrich, gate on consent, hand over to processing.

The collector calls ``events_ingest`` with the events of one request. Each event is validated on
its own (a bad one is reported, its neighbours kept), enriched (corrected timestamp, truncated IP,
parsed user agent), and dropped, only counted, if it comes from a bot or from someone who has not
allowed analytics (or was erased). What remains becomes one batch: appended to the Redis Stream
when REDIS_URL is set, processed in-process otherwise. Either way, when this returns, every
accepted event is durably stored.

With the stream, a request from people whose consent states this process has read before is
decided on those states and appended by a script that first checks, atomically, that Redis still
holds them: one round trip instead of a read and an append (see ``consent_gate_foreseen``).
"""

import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from django.conf import settings

from config.client_address import truncate_ip
from config.input_errors import NUL_REASON, nested_too_deep, nul_field
from consent.network import RequestFacts, gpc_signal, request_facts
from consent.selectors import Gate, consent_gate, consent_gate_foreseen
from consent.services import consent_apply_gpc
from consent.subjects import InvalidSubject, Subject
from tracking import stream
from tracking.event_schema import (
    DEPTH_REASON,
    MAX_EVENT_BYTES,
    MAX_EVENT_DEPTH,
    Envelope,
    InvalidEvent,
    Rejection,
    subject_ids,
    validate_encoded_event,
    validate_event,
)
from tracking.event_time import corrected_timestamp
from tracking.models import IngestCount
from tracking.source_keys import user_token_matches
from tracking.user_agents import Agent, describe_user_agent

# A JSON-escaped NUL character: \u0000 preceded by an even number of backslashes.
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# An event of a batch up to this size, still in JSON, is decoded straight into an Envelope: its
# re-encoding (what the 32 KB limit measures) cannot pass the limit: re-encoded, JSON loses its
# spaces and escapes of printable characters, and grows only where a short number is written
# out, at most 4.5 times (1e15 → 1000000000000000.0).
FAST_EVENT_BYTES = MAX_EVENT_BYTES // 8

# Names a consent tool (context.consent.categoryPreferences) may give the analytics purpose.
ANALYTICS_CATEGORIES = {"analytics", "statistics", "performance", "measurement"}


@dataclass
class IngestResult:
    accepted: int = 0
    stored_now: int | None = None  # known in-process; with the stream, processing comes later
    rejected: list[Rejection] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def everything_refused(self) -> bool:
        return bool(self.rejected) and not self.accepted and not self.dropped

    def body(self, *, batch: bool) -> dict[str, Any]:
        """The answer; when every event was refused, also the error's ``code``, ``detail`` and
        ``fields`` (``batch.1.properties.price`` in a batch, ``properties.price`` alone)."""
        body: dict[str, Any] = {
            "success": not self.everything_refused,
            "accepted": self.accepted,
            "dropped": dict(self.dropped),
            "rejected": [rejection.as_dict() for rejection in self.rejected],
        }
        if self.everything_refused:
            fields: dict[str, list[str]] = {}
            for rejection in self.rejected:
                name = f"batch.{rejection.index}.{rejection.field}" if batch else rejection.field
                fields.setdefault(name, []).append(rejection.reason)
            body.update(code="invalid", detail="No event was accepted: every event has errors.", fields=fields)
        return body


def _iso(moment: datetime | None) -> str | None:
    """``moment.isoformat()``; a UTC time (the common case, and every corrected timestamp) is
    written by msgspec, in the same format, in a tenth of the time (three per event)."""
    if moment is None:
        return None
    if moment.tzinfo is UTC:
        return msgspec.json.encode(moment)[1:-2].decode() + "+00:00"  # '"…Z"' → '…+00:00'
    return moment.isoformat()


def _category_choice(context: Mapping[str, Any]) -> bool | None:
    """The analytics choice a shop's own consent tool sent along (Segment's consent object), if any."""
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return None
    for name, allowed in preferences.items():
        if str(name).strip().lower() in ANALYTICS_CATEGORIES and isinstance(allowed, bool):
            return allowed
    return None


def _normalized(
    event: Envelope,
    *,
    received_at: datetime,
    received: str,
    batch_sent_at: datetime | None,
    subject: Subject,
    facts: RequestFacts,
    agent: Agent,
    internal: bool = False,
) -> dict[str, Any]:
    sent_at = event.sentAt or batch_sent_at
    client_time = event.originalTimestamp or event.timestamp
    timestamp, clamped = corrected_timestamp(received_at=received_at, timestamp=client_time, sent_at=sent_at)
    context = dict(event.context)
    context["ip"] = truncate_ip(str(context.get("ip") or facts["ip_address"]))
    pz = dict(context["pz"]) if isinstance(context.get("pz"), dict) else {}
    if not internal:
        pz.pop("internal", None)  # only the platform's own events (an exposure) may say they are
    pz.pop("userToken", None)  # a credential, checked at the edge: never stored
    pz["agent"] = agent.as_dict()
    if clamped:
        flags = pz.get("flags")  # the client's own, whatever it sent, or none
        pz["flags"] = [*(flags if isinstance(flags, list) else []), "timestamp_clamped"]
    context["pz"] = pz
    return {
        "messageId": event.messageId,
        "type": event.type,
        "event": event.event or "",
        "name": event.name or "",
        "userId": subject.user_id,
        "anonymousId": subject.anonymous_id,
        "groupId": "" if event.groupId is None else str(event.groupId),
        "previousId": "" if event.previousId is None else str(event.previousId),
        "timestamp": _iso(timestamp),
        "receivedAt": received,
        "sentAt": _iso(sent_at),
        "originalTimestamp": _iso(client_time),
        "properties": event.properties,
        "traits": event.traits,
        "context": context,
    }


# What an event with a user id and no anonymous id needs, from a sender who does not vouch for it.
UNPROVEN_USER_ID = (
    "needs proof that the sender may act for this user: the source's secret key (a server), "
    "or context.pz.userToken (a browser); or send it with the visitor's anonymousId"
)


def _proven(event: Envelope, user_id: str, secret_key_digest: str) -> bool:
    """Whether a browser's event carries the userToken of its user id. The public write key alone
    proves nothing: an event that names a user without it is recorded as its anonymous visitor's
    only, so it can neither link that visitor to the user nor write into the user's profile."""
    pz = event.context.get("pz")
    token = pz.get("userToken") if isinstance(pz, dict) else None
    return bool(secret_key_digest) and user_token_matches(secret_key_digest, user_id, token)


def _from_json(raw: msgspec.Raw, batch_context: Mapping[str, Any] | None) -> Envelope | None:
    """A batch's event still in JSON, validated in one step; None when it needs the full path: too
    big to be sure of the size limit, maybe holding a NUL, maybe nested too deep (it has more
    brackets than levels allowed), or refused (the full path says why)."""
    if len(raw) > FAST_EVENT_BYTES:
        return None
    data = bytes(raw)
    if b"u0000" in data or data.count(b"{") + data.count(b"[") > MAX_EVENT_DEPTH:
        return None
    try:
        return validate_encoded_event(data, batch_context=batch_context)
    except (msgspec.DecodeError, msgspec.ValidationError, InvalidEvent, UnicodeDecodeError, RecursionError):
        return None


def _decoded(index: int, raw: msgspec.Raw, result: IngestResult) -> Any:
    """A batch's event that needs the full path, decoded; a refusal (not JSON that can be stored,
    e.g. a lone surrogate ``\\ud800`` or too deep for the decoder) is added to ``result``."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = DEPTH_REASON if isinstance(exc, RecursionError) else f"is not valid JSON: {exc}"
        result.rejected.append(Rejection(index, None, "event", reason))
        return _REFUSED


_REFUSED = object()


def _validated(
    index: int,
    raw: Any,
    result: IngestResult,
    *,
    batch_context: Mapping[str, Any] | None,
    path_type: str | None,
) -> Envelope | None:
    """One decoded event checked in full: its size, NUL characters, then ``validate_event``; a
    refusal is added to ``result`` with the event's index and messageId."""
    message_id = raw.get("messageId") if isinstance(raw, dict) else None
    message_id = message_id if isinstance(message_id, str) else None
    if nested_too_deep(raw, MAX_EVENT_DEPTH):
        result.rejected.append(Rejection(index, message_id, "event", DEPTH_REASON))
        return None
    encoded = msgspec.json.encode(raw)
    if len(encoded) > MAX_EVENT_BYTES:
        result.rejected.append(Rejection(index, message_id, "event", "is over the 32 KB limit for one event"))
        return None
    if b"u0000" in encoded and NUL_ESCAPE.search(encoded):  # PostgreSQL stores no NUL, in text or JSON
        result.rejected.append(Rejection(index, message_id, nul_field(raw) or "event", NUL_REASON))
        return None
    try:
        return validate_event(raw, batch_context=batch_context, path_type=path_type)
    except InvalidEvent as exc:
        result.rejected.append(Rejection(index, message_id, exc.field, exc.reason))
        return None


def batch_context_problem(context: Mapping[str, Any]) -> str | None:
    """What makes a batch's context, merged into each of its events, unstorable; None when nothing."""
    if nested_too_deep(context, MAX_EVENT_DEPTH - 1):
        return DEPTH_REASON
    if NUL_ESCAPE.search(msgspec.json.encode(context)):
        return NUL_REASON
    return None


def events_ingest(
    *,
    source_id: int,
    raw_events: Sequence[Any],
    meta: Mapping[str, Any],
    received_at: datetime,
    path_type: str | None = None,
    batch_context: Mapping[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
    internal: bool = False,
    user_ids_trusted: bool,
    secret_key_digest: str = "",
) -> IngestResult:
    """``raw_events`` are decoded events, or (a batch) ``msgspec.Raw`` JSON of each, validated
    straight into Envelopes when they are valid, and decoded for the full path when not.
    ``internal``: the events are the platform's own (the recommendation API's exposures), which
    may carry ``context.pz.internal``; from anyone else it is removed.
    ``user_ids_trusted``: the sender vouches for every user id (the source's secret key, the
    platform itself, an operator's replay); otherwise an event's userId counts only with a
    ``context.pz.userToken`` that matches it under ``secret_key_digest`` (see ``_proven``)."""
    result = IngestResult()
    headers = meta if isinstance(meta, dict) else dict(meta)
    facts = request_facts(headers, settings.PZ_TRUSTED_PROXIES)
    valid: list[tuple[Envelope, Subject]] = []
    subjects: dict[tuple[str, str], Subject] = {}
    for index, raw in enumerate(raw_events):
        event = _from_json(raw, batch_context) if isinstance(raw, msgspec.Raw) else None
        if event is None:
            raw = _decoded(index, raw, result) if isinstance(raw, msgspec.Raw) else raw
            if raw is _REFUSED:
                continue
            event = _validated(index, raw, result, batch_context=batch_context, path_type=path_type)
            if event is None:
                continue
        ids = subject_ids(event)
        if ids[0] and not user_ids_trusted and not _proven(event, ids[0], secret_key_digest):
            if not ids[1]:
                result.rejected.append(Rejection(index, event.messageId, "userId", UNPROVEN_USER_ID))
                continue
            ids = ("", ids[1])
        subject = subjects.get(ids)
        if subject is None:
            try:
                subject = subjects[ids] = Subject(user_id=ids[0], anonymous_id=ids[1])
            except InvalidSubject:  # ids of blanks only
                field = "userId" if event.userId is not None else "anonymousId"
                result.rejected.append(Rejection(index, event.messageId, field, "must not be blank"))
                continue
        valid.append((event, subject))

    gpc = gpc_signal(headers)
    subjects_seen = [subject for _, subject in valid]
    received = _iso(received_at) or ""

    def batch_for(gate: Mapping[Subject, Gate]) -> dict[str, Any] | None:
        events, dropped = _admitted(
            valid, gate, received_at=received_at, received=received, batch_sent_at=batch_sent_at, facts=facts,
            internal=internal,
        )  # fmt: skip
        result.accepted, result.dropped = len(events), dropped
        if not (events or dropped or result.rejected):
            return None
        return {
            "id": uuid.uuid4().hex,
            "source": source_id,
            "received_at": received,
            "events": events,
            "dropped": dict(dropped),
            "rejected": len(result.rejected),
        }

    # With the stream, decide on the consent states this process last read for these people, and
    # append only if Redis still holds them (one round trip); when one changed, or was never read
    # here, read them (a second round trip) and decide again.
    foreseen = consent_gate_foreseen(subjects_seen, "analytics") if streaming() and not gpc else None
    if foreseen is not None and len(foreseen.expected) <= MAX_FORESEEN_KEYS:
        batch = batch_for(foreseen.gates)
        if batch is None or stream.stream_append_if_unchanged(batch, foreseen.expected):
            return result
    gate = consent_gate(subjects_seen, "analytics")
    if gpc:
        for subject in gate:
            consent_apply_gpc(subject=subject, **facts)
    batch = batch_for(gate)
    if batch is not None:
        result.stored_now = hand_over(batch)
    return result


def _admitted(
    valid: list[tuple[Envelope, Subject]],
    gate: Mapping[Subject, Gate],
    *,
    received_at: datetime,
    received: str,
    batch_sent_at: datetime | None,
    facts: RequestFacts,
    internal: bool,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The normalized events to store, and what was dropped (bots, no consent, erased) by reason."""
    events = []
    dropped: Counter[str] = Counter()
    for event, subject in valid:
        agent = describe_user_agent(str(event.context.get("userAgent") or facts["user_agent"]))
        if agent.is_bot:
            dropped[IngestCount.Outcome.BOT] += 1
            continue
        decision = gate[subject]
        if decision.suppressed:
            dropped[IngestCount.Outcome.SUPPRESSED] += 1
            continue
        # A shop's own consent tool may grant where the platform only knows the default, never
        # against a withdrawal the person recorded here.
        chosen = _category_choice(event.context)
        allowed = decision.allowed if chosen is None or decision.withdrawn else chosen
        if not allowed:
            dropped[IngestCount.Outcome.NO_CONSENT] += 1
            continue
        events.append(
            _normalized(
                event,
                received_at=received_at,
                received=received,
                batch_sent_at=batch_sent_at,
                subject=subject,
                facts=facts,
                agent=agent,
                internal=internal,
            )
        )
    return events, dropped


# Lua's unpack() takes at most ~8,000 values; a bigger batch reads its states first.
MAX_FORESEEN_KEYS = 2000


def streaming() -> bool:
    return bool(settings.REDIS_URL) and not settings.PZ_PROCESS_EVENTS_IN_PROCESS


def hand_over(batch: Mapping[str, Any]) -> int | None:
    """The transport: the Redis Stream when configured (a consumer processes it), else in-process."""
    if streaming():
        stream.stream_append(batch)
        return None
    from tracking.processing import batches_process

    return batches_process([batch]).stored
