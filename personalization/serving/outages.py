"""Serving while PostgreSQL or Redis is down: the held answer.

The recommendation API reads the visitor's consent and live profile from Redis (PostgreSQL on a
miss), the campaigns and the catalog's changes from PostgreSQL. When one of them fails, the answer
is the placement's trending list in the page's context, computed from what the process holds in
memory: the loaded model (its trending scores) and its catalog snapshot (which products are
active and in stock, their cards). It is not personalized, says so with ``fallback`` "outage",
is not cached anywhere, and is not logged as an exposure (there may be nowhere to log it).
When the process holds no model, snapshot or copy of the placement, there is nothing to answer
with, and the view answers 503.

``stores_breaker`` keeps a dead store from costing every request its connection timeout: after
two store errors in a row, requests go straight to the held answer for a few seconds, then try
the stores again. It is the ``circuitbreaker`` package's, used as a context manager (no lock held
while a request is served; pybreaker's holds one around every call, which would serve a process's
requests one at a time).
"""

import uuid

from circuitbreaker import CircuitBreaker  # type: ignore[import-untyped]

from config.store_outages import STORE_ERRORS
from personalization.model_store import active_model, held_only
from personalization.recommendations import Context, rank_for_visitor
from personalization.serving.requests import Served, ServedItem, ServeRequest
from personalization.serving.slots import slot_limit
from personalization.serving.specs import placement_spec_held

OUTAGE_NOTE = "a store is unavailable: the trending list this server holds"
# Seconds the breaker stays open before a request tries the stores again.
STORES_RETRY_SECONDS = 5

# Only store errors count: a bad request is no sign of an outage.
stores_breaker = CircuitBreaker(
    failure_threshold=2, recovery_timeout=STORES_RETRY_SECONDS, expected_exception=STORE_ERRORS, name="stores"
)


def held_answer(request: ServeRequest) -> Served | None:
    """The held answer (see the module), or None when this process holds nothing to answer with."""
    spec = placement_spec_held(request.placement)
    token = held_only.set(True)
    try:
        model = active_model()
        snapshot = model.memo.get("catalog") if model is not None else None
        if spec is None or model is None or snapshot is None:
            return None
        category = request.category
        if not category and request.product in model.row_of_sku:
            category = snapshot.categories[model.row_of_sku[request.product]]
        context = Context(product=request.product, category=category, country=request.country)
        ranked = rank_for_visitor(request.subject, context, slot_limit(request, spec, None), "trending")
    finally:
        held_only.reset(token)
    reason = {"recommender": "trending", "strategy": "trending"}
    cards = [(snapshot.cards[row], score) for row, score in zip(ranked.rows, ranked.scores, strict=True)]
    items = [
        ServedItem(card, position, score, reason)
        for position, (card, score) in enumerate(((c, s) for c, s in cards if c is not None), start=1)
    ]
    if not items:
        return None
    return Served(uuid.uuid4(), spec.key, None, "trending", items, False, OUTAGE_NOTE, fallback="outage")
