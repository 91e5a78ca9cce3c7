"""Serving a placement: which campaign, which strategy and fallbacks, which rules, within which budget.

``serve(request)`` answers one request of the recommendation API:

1. The placement's campaigns (cached in the process, reloaded within a second of a change) and
   the visitor's facts pick the campaign: the highest-priority live one whose audience matches.
   Without ``personalization`` consent only what the request itself says (country, device) is
   used, and the answer is not personalized.
2. Its strategy, then each fallback in turn, fills the slot until it has ``limit`` items: a
   strategy that returns too few, or fails, hands over to the next. The campaign's business rules
   apply to every strategy's candidates.
3. All this runs within the placement's latency budget. Past it (or on an unexpected error) the
   answer is the precomputed non-personalized list of the placement (trending in the context,
   cached), and the fallback is counted. Work that may block or run long (a database query, a
   live scoring over every item) runs in a worker thread of the budget's pool, and the answer
   comes back by the deadline whatever that work does. What needs neither (the campaign, the
   precomputed and session lists, the catalog snapshot, the rules: memory only, bounded by the
   slot's size) runs in the request's own thread first: the hand-off to the pool made the
   median latency at 500 requests/s 1.5 times what it is without (BENCHMARKS.md). The moment
   it reaches a query or a live scoring, it is refused there and the request starts again in
   the pool with what is left of the budget; an answer computed past the deadline is replaced,
   as the pool's would be.
   ``PZ_SERVING_INLINE=0`` sends every request to the pool.
4. Exploration, when the campaign asks for it, reorders the slot and logs each item's propensity.

The exposure (rec_id, placement, campaign, strategy, items, positions, propensities) is logged by
the view through the event stream, never by an insert here.
"""

import hashlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, connections
from django.utils import timezone

from config.cache import redis_cache
from consent.selectors import consent_allows
from personalization import session_lists
from personalization.catalog_snapshot import catalog_snapshot
from personalization.model_store import active_model
from personalization.models import Placement, Product
from personalization.recommendations import Context, live_scoring_refused, recommendations_for_visitor
from personalization.serving.requests import Served, ServedItem, ServeRequest, product_cards
from personalization.serving.slots import (
    INLINE_REFUSALS,
    BudgetSpent,
    InlineRefused,
    campaign_click_stats,
    serve_inside,
    slot_limit,
)
from personalization.serving.specs import (
    CampaignSpec,
    PlacementSpec,
    UnknownPlacement,
    campaign_spec,
    campaigns_changed,
    forget_placements,
    placement_spec,
)
from personalization.serving.strategies import STRATEGY_FUNCTIONS
from tracking import live_mirror

logger = logging.getLogger(__name__)

FALLBACK_LIST_SECONDS = 300
ANSWER_SECONDS = 60  # a non-personalized answer is shared this long

__all__ = [
    "STRATEGY_FUNCTIONS",
    "CampaignSpec",
    "PlacementSpec",
    "ServeRequest",
    "Served",
    "ServedItem",
    "UnknownPlacement",
    "campaign_click_stats",
    "campaign_spec",
    "campaigns_changed",
    "fallback_counts",
    "forget_placements",
    "placement_spec",
    "serve",
    "warm_up",
]


_executor = ThreadPoolExecutor(max_workers=settings.PZ_SERVING_THREADS, thread_name_prefix="pz-serve")


def _refuse_queries(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    raise InlineRefused("a database query")


def _computed(
    request: ServeRequest,
    spec: PlacementSpec,
    now: datetime,
    allowed: bool,
    mirror_entries: list[bytes | None] | None,
    listed: list[bytes | None],
    *,
    inline: bool,
) -> Served:
    """``serve_inside``'s answer: in a worker thread of the budget's pool, or ``inline`` in the
    request's own thread, where a database query or a live scoring over every item is refused
    (``INLINE_REFUSALS``: the request needs the pool; see the module)."""
    if not inline:
        close_old_connections()
        try:
            return serve_inside(request, spec, now, allowed, mirror_entries, listed)
        finally:
            close_old_connections()
    refusing = live_scoring_refused.set(True)
    try:
        with connection.execute_wrapper(_refuse_queries):
            return serve_inside(request, spec, now, allowed, mirror_entries, listed)
    finally:
        live_scoring_refused.reset(refusing)


def warm_up() -> bool:
    """Load the active model and this process's catalog snapshot now. A server calls it as a
    worker starts (config/wsgi.py), so that no visitor's request, with its budget of tens of
    milliseconds, pays for them: the first one used to fall back. False when there is no model
    yet, or when they could not be loaded (then the first request loads them, as before)."""
    try:
        model = active_model()
        if model is not None:
            catalog_snapshot(model)
        return model is not None
    except Exception:
        logger.warning("serving could not load the active model at start; the first request will", exc_info=True)
        return False
    finally:
        connections.close_all()  # this thread serves no request: its connection would idle


def fallback_count(placement: str, reason: str) -> None:
    key = f"personalization:fallbacks:{timezone.now():%Y-%m-%d}:{placement}:{reason}"
    cache.add(key, 0, 40 * 86_400)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, 40 * 86_400)


def fallback_counts(days: int = 14) -> dict[tuple[str, str, str], int]:
    """``{(day, placement, reason): count}`` of the last days' fallbacks."""
    today = timezone.now().date()
    placements = list(Placement.objects.values_list("key", flat=True))
    keys = {
        f"personalization:fallbacks:{today - timedelta(days=n):%Y-%m-%d}:{p}:{r}": (
            f"{today - timedelta(days=n):%Y-%m-%d}",
            p,
            r,
        )
        for n in range(days)
        for p in placements
        for r in ("budget", "error")
    }
    return {keys[k]: int(v) for k, v in cache.get_many(list(keys)).items()}


def precomputed_list(spec: PlacementSpec, request: ServeRequest, limit: int) -> list[ServedItem]:
    """The placement's non-personalized list for the context: trending in the category of the
    page (or of the product on it), for the request's country; kept in the cache 5 minutes."""
    key = f"personalization:precomputed:{spec.key}:{request.category}:{request.product}:{request.country}:{limit}"
    entries: list[tuple[int, float]] | None = cache.get(key)
    if entries is None:
        category = request.category
        if not category and request.product:
            product = Product.objects.select_related("category").filter(sku=request.product).first()
            category = product.category.path if product is not None and product.category else ""
        context = Context(product=request.product, category=category, country=request.country)
        found = recommendations_for_visitor(request.subject, context, limit, "trending")
        entries = [(item.product.pk, item.score) for item in found.items]
        cache.set(key, entries, FALLBACK_LIST_SECONDS)
    products = {card.pk: card for card in product_cards(pks=[pk for pk, _ in entries]).values()}
    return [
        ServedItem(products[pk], position, score, {"recommender": "trending", "strategy": "trending"})
        for position, (pk, score) in enumerate(((pk, s) for pk, s in entries if pk in products), start=1)
    ]


def _answer_key(request: ServeRequest, spec: PlacementSpec) -> str:
    """The cache key of a non-personalized answer: everything it depends on."""
    campaigns = ",".join(f"{c.id}.{c.version}" for c in spec.campaigns)
    # The version this process serves: no round trip (the process checks which is active once a second).
    model = active_model()
    parts = (
        spec.key,
        campaigns,
        (model.version_id, model.revision) if model is not None else None,
        request.product,
        request.category,
        request.country,
        request.device,
        request.limit,
    )
    return "personalization:answer:" + hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


def _answer_entry(key: str, stored: bytes | None, was_read: bool) -> dict[str, Any] | None:
    """The cache entry of a shared answer: decoded from the bytes read with the consent state if
    they were (Redis), else read now."""
    if not was_read:
        entry: dict[str, Any] | None = cache.get(key)
        return entry
    return redis_cache().loads(stored) if stored is not None else None


def _cached(entry: dict[str, Any] | None) -> Served | None:
    """A non-personalized answer from its cache entry, with a rec_id of its own; products
    deactivated since are left out."""
    if entry is None:
        return None
    cards = product_cards(pks=[i[0] for i in entry["items"]])
    products = {card.pk: card for card in cards.values()}
    items = [
        ServedItem(products[pk], position, score, reason, propensity)
        for position, (pk, score, reason, propensity) in enumerate(
            (i for i in entry["items"] if i[0] in products), start=1
        )
    ]
    return Served(uuid.uuid4(), entry["placement"], entry["campaign"], entry["strategy"], items, False, entry["note"])


def _cache_answer(key: str, served: Served) -> None:
    items = [(i.product.pk, i.score, i.reason, i.propensity) for i in served.items]
    entry = {
        "placement": served.placement,
        "campaign": served.campaign,
        "strategy": served.strategy,
        "note": served.note,
        "items": items,
    }
    cache.set(key, entry, ANSWER_SECONDS)


def serve(request: ServeRequest) -> Served:
    """The answer to one request, within the placement's latency budget (see the module)."""
    spec = placement_spec(request.placement)
    now = request.now or timezone.now()
    # On Redis, the visitor's live profile (from the mirror), the lists scored with their session
    # (personalization.session_lists) and the shared answer for those who gave no consent are read
    # in the consent's round trip.
    subject = request.subject
    mirrored = live_mirror.mirrored()
    profile_keys = live_mirror.profile_keys(subject.user_id, subject.anonymous_id) if mirrored else []
    list_keys = session_lists.cache_keys(profile_keys) if session_lists.enabled() else []
    # A request with a country: the country the visitor's lists are scored with, too.
    asked_keys = session_lists.country_keys(profile_keys[:1]) if list_keys and request.country else []
    key = _answer_key(request, spec)
    along = [*live_mirror.cache_keys(profile_keys), *list_keys, *asked_keys, key] if mirrored else []
    read: list[bytes | None] = []
    allowed = consent_allows(
        subject=subject, purpose="personalization", jurisdiction=request.country or None, along=along, read=read
    )
    was_read = bool(along) and len(read) == len(along)
    mirror_entries = read[: len(profile_keys)] if profile_keys and was_read else None
    listed = read[len(profile_keys) : len(profile_keys) + len(list_keys)] if was_read else []
    if allowed and asked_keys and was_read and read[-2] != request.country.encode():
        # Once per visitor and country: from now on their lists are scored for the country they
        # are asked with, so that they match (see session_lists.country_note). Not needed for this answer.
        try:
            session_lists.country_note(profile_keys[0], request.country)
        except Exception:
            logger.warning("could not note the country of %s's lists", profile_keys[0], exc_info=True)
    if not allowed:  # the answer does not depend on who asks: shared through the cache
        cached = _cached(_answer_entry(key, read[-1] if was_read else None, was_read))
        if cached is not None:
            return cached
    deadline = time.monotonic() + spec.budget_ms / 1000
    bounded = replace(request, deadline=deadline)
    try:
        inputs = (bounded, spec, now, allowed, mirror_entries, listed)
        served: Served | None = None
        if settings.PZ_SERVING_INLINE:
            with suppress(*INLINE_REFUSALS):  # refused: the pool's worker takes it, with what is left
                served = _computed(*inputs, inline=True)
        if served is None:
            future = _executor.submit(_computed, *inputs, inline=False)
            served = future.result(timeout=max(0.0, deadline - time.monotonic()))
        elif time.monotonic() > deadline:  # computed, but too late: as the worker's answer would be
            raise BudgetSpent(spec.key)
    except (FutureTimeout, BudgetSpent):  # the worker may see the deadline pass first
        reason = "budget"
    except Exception:
        logger.exception("serving placement %s failed", spec.key)
        reason = "error"
    else:
        if not allowed and not served.personalized and served.items:
            _cache_answer(key, served)
        return served
    fallback_count(spec.key, reason)
    return Served(
        rec_id=uuid.uuid4(),
        placement=spec.key,
        campaign=None,
        strategy="trending",
        items=precomputed_list(spec, request, slot_limit(request, spec, None)),
        personalized=False,
        note=f"the precomputed list ({'over the latency budget' if reason == 'budget' else 'an error'})",
        fallback=reason,
    )
