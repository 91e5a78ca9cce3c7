"""The demo shop keeps who a visitor browses as in their session: its entry in the personal-data registry."""

from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.cached_db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from consent.subjects import Identities
from personalization.shop_views import ANONYMOUS_ID_KEY, BROWSE_AS_KEY


def _sessions_of(identities: Identities) -> list[str]:
    """Session keys whose data names the subject. Session data is encoded, so each is decoded: a
    scan the demo shop can afford (production serves no demo shop)."""
    keys = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        data: dict[str, Any] = session.get_decoded()
        if data.get(BROWSE_AS_KEY) in identities.user_ids or data.get(ANONYMOUS_ID_KEY) in identities.anonymous_ids:
            keys.append(session.session_key)
    return keys


def subject_export(identities: Identities) -> dict[str, Any]:
    return {"demo_shop_sessions": len(_sessions_of(identities))}


def subject_erase(identities: Identities) -> dict[str, int]:
    keys = _sessions_of(identities)
    for key in keys:
        SessionStore(session_key=key).delete()  # the row and its cached copy
    return {"demo shop sessions deleted": len(keys)}


def purge(cutoff: datetime) -> dict[str, int]:
    expired, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return {"expired sessions deleted": expired}
