"""The rules of the real-time profile: sessions, decayed affinities, the cart (pure: no Django)."""

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_GAP = timedelta(minutes=30)
AFFINITY_HALF_LIFE = timedelta(days=14)
RECENTLY_VIEWED = 20
AFFINITY_KEYS = 50  # the strongest categories/brands kept per profile

# How much each kind of event says about a visitor's interest in a category or brand.
WEIGHTS = {"Product Viewed": 1.0, "Product Clicked": 1.0, "Product Added": 3.0, "Order Completed": 5.0}


@dataclass
class SessionState:
    session_id: str
    started_at: datetime | None
    last_seen_at: datetime | None
    sessions: int


def assign_session(state: SessionState, timestamp: datetime) -> str:
    """The session of an event, opening a new one after 30 minutes of inactivity.

    Events are processed in time order per visitor; a late event (older than the current
    session) gets a session of its own rather than reopening the current one.
    """
    if state.last_seen_at is None or timestamp > state.last_seen_at + SESSION_GAP:
        state.session_id = uuid.uuid4().hex[:16]
        state.started_at = timestamp
        state.last_seen_at = timestamp
        state.sessions += 1
        return state.session_id
    if state.started_at is not None and timestamp >= state.started_at - SESSION_GAP:
        state.last_seen_at = max(state.last_seen_at, timestamp)
        if timestamp < state.started_at:
            state.started_at = timestamp
        return state.session_id
    state.sessions += 1
    return uuid.uuid4().hex[:16]


def decayed(score: float, since: float, now: float) -> float:
    """A score halved every half-life (epoch seconds in, never grows when going back in time)."""
    elapsed = max(0.0, now - since)
    return score * math.pow(0.5, elapsed / AFFINITY_HALF_LIFE.total_seconds())


def add_affinity(affinities: dict[str, list[float]], key: str, weight: float, at: datetime) -> None:
    """Add ``weight`` to ``key``'s decayed score as of ``at``; keep the strongest keys only."""
    if not key or weight <= 0:
        return
    now = at.timestamp()
    score, since = affinities.get(key, [0.0, now])
    as_of = max(since, now)
    affinities[key] = [round(decayed(score, since, as_of) + decayed(weight, now, as_of), 6), as_of]
    if len(affinities) > AFFINITY_KEYS:
        weakest = min(affinities, key=lambda k: decayed(affinities[k][0], affinities[k][1], as_of))
        del affinities[weakest]


def push_recent(recent: list[str], sku: str) -> list[str]:
    return [sku, *(s for s in recent if s != sku)][:RECENTLY_VIEWED]


def cart_change(cart: dict[str, int], sku: str, quantity: int) -> None:
    """Add (or with a negative quantity remove) units of a product."""
    remaining = cart.get(sku, 0) + quantity
    if remaining > 0:
        cart[sku] = remaining
    else:
        cart.pop(sku, None)
