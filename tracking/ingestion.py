"""Ingestion at the edge: validate, enrich, gate on consent, hand over to processing.

The collector calls ``events_ingest`` with the events of one request. Each event is validated on
its own (a bad one is reported, its neighbours kept), enriched (corrected timestamp, truncated IP,
parsed user agent), and dropped, only counted, if it comes from a bot or from someone who has not
allowed analytics (or was erased). What remains becomes one batch: appended to the Redis Stream
when REDIS_URL is set, processed in-process otherwise. Either way, when this returns, every
accepted event is durably stored.
"""

import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from django.conf import settings

from consent.network import RequestFacts, gpc_signal, request_facts, truncate_ip
from consent.selectors import consent_gate
from consent.services import consent_apply_gpc
from consent.subjects import Subject
from tracking.event_schema import (
    MAX_EVENT_BYTES,
    Envelope,
    InvalidEvent,
    Rejection,
    corrected_timestamp,
    subject_ids,
    validate_event,
)
from tracking.models import IngestCount
from tracking.user_agents import describe_user_agent

# A JSON-escaped NUL character: \u0000 preceded by an even number of backslashes.
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# Names a consent tool (context.consent.categoryPreferences) may give the analytics purpose.
ANALYTICS_CATEGORIES = {"analytics", "statistics", "performance", "measurement"}


@dataclass
class IngestResult:
    accepted: int = 0
    stored_now: int | None = None  # known in-process; with the stream, processing comes later
    rejected: list[Rejection] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def body(self) -> dict[str, Any]:
        return {
            "success": True,
            "accepted": self.accepted,
            "dropped": dict(self.dropped),
            "rejected": [rejection.as_dict() for rejection in self.rejected],
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


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
    facts: RequestFacts,
    internal: bool = False,
) -> dict[str, Any]:
    sent_at = event.sentAt or batch_sent_at
    client_time = event.originalTimestamp or event.timestamp
    timestamp, clamped = corrected_timestamp(received_at=received_at, timestamp=client_time, sent_at=sent_at)
    context = dict(event.context)
    agent = describe_user_agent(str(context.get("userAgent") or facts["user_agent"]))
    context["ip"] = truncate_ip(str(context.get("ip") or facts["ip_address"]))
    pz = dict(context["pz"]) if isinstance(context.get("pz"), dict) else {}
    if not internal:
        pz.pop("internal", None)  # only the platform's own events (an exposure) may say they are
    pz["agent"] = agent.as_dict()
    if clamped:
        pz["flags"] = [*pz.get("flags", []), "timestamp_clamped"]
    context["pz"] = pz
    user_id, anonymous_id = subject_ids(event)
    return {
        "messageId": event.messageId,
        "type": event.type,
        "event": event.event or "",
        "name": event.name or "",
        "userId": user_id,
        "anonymousId": anonymous_id,
        "groupId": "" if event.groupId is None else str(event.groupId),
        "previousId": "" if event.previousId is None else str(event.previousId),
        "timestamp": timestamp.isoformat(),
        "receivedAt": received,
        "sentAt": _iso(sent_at),
        "originalTimestamp": _iso(client_time),
        "properties": event.properties,
        "traits": event.traits,
        "context": context,
    }


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
) -> IngestResult:
    """``internal``: the events are the platform's own (the recommendation API's exposures), which
    may carry ``context.pz.internal``; from anyone else it is removed."""
    result = IngestResult()
    facts = request_facts(dict(meta), settings.PZ_TRUSTED_PROXIES)
    valid: list[tuple[Envelope, Subject]] = []
    for index, raw in enumerate(raw_events):
        message_id = raw.get("messageId") if isinstance(raw, dict) else None
        encoded = msgspec.json.encode(raw)
        if len(encoded) > MAX_EVENT_BYTES:
            result.rejected.append(Rejection(index, message_id, "event", "is over the 32 KB limit for one event"))
            continue
        if b"u0000" in encoded and NUL_ESCAPE.search(encoded):  # PostgreSQL stores no NUL, in text or JSON
            result.rejected.append(Rejection(index, message_id, "event", "contains a NUL character (\\u0000)"))
            continue
        try:
            event = validate_event(raw, batch_context=batch_context, path_type=path_type)
        except InvalidEvent as exc:
            result.rejected.append(
                Rejection(index, message_id if isinstance(message_id, str) else None, exc.field, exc.reason)
            )
            continue
        user_id, anonymous_id = subject_ids(event)
        valid.append((event, Subject(user_id=user_id, anonymous_id=anonymous_id)))

    gate = consent_gate((subject for _, subject in valid), "analytics")
    if gpc_signal(dict(meta)):
        for subject in gate:
            consent_apply_gpc(subject=subject, **facts)
    events = []
    received = received_at.isoformat()
    for event, subject in valid:
        if describe_user_agent(str(event.context.get("userAgent") or facts["user_agent"])).is_bot:
            result.dropped[IngestCount.Outcome.BOT] += 1
            continue
        decision = gate[subject]
        if decision.suppressed:
            result.dropped[IngestCount.Outcome.SUPPRESSED] += 1
            continue
        # A shop's own consent tool may grant where the platform only knows the default, never
        # against a withdrawal the person recorded here.
        chosen = _category_choice(event.context)
        allowed = decision.allowed if chosen is None or decision.withdrawn else chosen
        if not allowed:
            result.dropped[IngestCount.Outcome.NO_CONSENT] += 1
            continue
        events.append(
            _normalized(
                event,
                received_at=received_at,
                received=received,
                batch_sent_at=batch_sent_at,
                facts=facts,
                internal=internal,
            )
        )
    result.accepted = len(events)

    if events or result.dropped or result.rejected:
        batch = {
            "id": uuid.uuid4().hex,
            "source": source_id,
            "received_at": received_at.isoformat(),
            "events": events,
            "dropped": dict(result.dropped),
            "rejected": len(result.rejected),
        }
        result.stored_now = hand_over(batch)
    return result


def hand_over(batch: Mapping[str, Any]) -> int | None:
    """The transport: the Redis Stream when configured (a consumer processes it), else in-process."""
    if settings.REDIS_URL and not settings.PZ_PROCESS_EVENTS_IN_PROCESS:
        from tracking.stream import stream_append

        stream_append(batch)
        return None
    from tracking.processing import batches_process

    return batches_process([batch]).stored
