"""Filling a slot: the campaign for the visitor, its strategy then fallbacks, the rules, exploration."""

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from django.core.cache import cache

from personalization import exploration
from personalization.campaign_rules import (
    Audience,
    CampaignChoice,
    Candidate,
    Rules,
    Shown,
    campaign_choose,
    rules_apply,
)
from personalization.models import Campaign, Exposure, ExposureOutcome
from personalization.recommendations import LiveScoringRefused, Visit
from personalization.serving.requests import (
    Served,
    ServedItem,
    ServeRequest,
    Situation,
    context_card,
    product_cards,
)
from personalization.serving.specs import CampaignSpec, PlacementSpec
from personalization.serving.strategies import STRATEGY_FUNCTIONS, pinned_candidates, visitor_facts
from tracking.selectors import LiveProfile, live_profile, purchased_skus

logger = logging.getLogger(__name__)

PERSONAL = {"personalized", "buy_again", "recently_viewed"}


class InlineRefused(Exception):
    """Serving in the request's own thread reached work that may block or run long (a database
    query, a live scoring over every item): the request goes to the budget's worker instead."""


INLINE_REFUSALS = (InlineRefused, LiveScoringRefused)


class BudgetSpent(Exception):
    """The request's answer was given without this computation (past the budget): it stops at the
    next strategy rather than spend the process's time on an answer nobody waits for."""


def _situation(
    request: ServeRequest,
    allowed: bool,
    mirror_entries: Sequence[bytes | None] | None,
    listed: Sequence[bytes | None],
) -> Situation:
    subject = request.subject
    profile: LiveProfile | None = (
        live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id, mirror_entries=mirror_entries)
        if allowed
        else None
    )
    return Situation(
        request=request,
        visit=Visit(personalization_allowed=allowed, profile=profile, session_lists=listed if allowed else ()),
        context_product=context_card(request.product) if request.product else None,
        cart=list(profile.cart) if profile is not None else [],
        excluded=frozenset(),
    )


def _excluded_skus(spec: CampaignSpec, situation: Situation, now: datetime) -> frozenset[str]:
    request = situation.request
    skus = {request.product} - {""}
    if spec.exclude_in_cart:
        skus |= set(situation.cart)
    if spec.exclude_purchased and situation.visit.personalization_allowed:
        since = now - timedelta(days=spec.exclude_purchased_days) if spec.exclude_purchased_days else None
        skus |= purchased_skus(user_id=request.subject.user_id, anonymous_id=request.subject.anonymous_id, since=since)
    return frozenset(skus)


def _chained(candidates: list[Candidate], rank: int, strategy: str) -> list[Candidate]:
    """Candidates of the ``rank``-th strategy of the chain, scored so that the main strategy's come
    first and each fallback's after (the rules then see one ranked list), and naming it."""
    if not candidates:
        return []
    scores = [c.score for c in candidates]
    low, span = min(scores), (max(scores) - min(scores)) or 1.0
    return [
        Candidate(
            c.sku,
            (c.score - low) / span * 0.99 + 1000 - rank,
            c.category,
            c.brand,
            c.price,
            c.in_stock,
            {**c.reason, "strategy": strategy},
        )
        for c in candidates
    ]


def _fill(spec: CampaignSpec, situation: Situation, limit: int, now: datetime) -> tuple[list[ServedItem], list[str]]:
    """The campaign's strategy, then its fallbacks, until the slot is full; the rules apply to all."""
    excluded = _excluded_skus(spec, situation, now)
    situation = replace(situation, excluded=excluded)
    rules = replace(spec.rules, exclude_skus=excluded)
    pins = [pin.sku for pin in rules.pins]
    pinned = pinned_candidates(pins) if pins else {}
    merged: list[Candidate] = []
    tried: list[str] = []
    context_price = float(situation.context_product.price) if situation.context_product is not None else None
    shown: list[Shown] = []
    for rank, name in enumerate(dict.fromkeys((spec.strategy, *spec.fallbacks))):
        if situation.request.deadline is not None and time.monotonic() > situation.request.deadline:
            raise BudgetSpent(spec.id)
        try:
            found = STRATEGY_FUNCTIONS[name](name, situation, 3 * limit + 20)
        except INLINE_REFUSALS:
            raise  # not a failure of the strategy: the budget's worker runs it
        except Exception:
            logger.exception("strategy %s of campaign %s failed", name, spec.id)
            tried.append(f"{name} (failed)")
            continue
        tried.append(name)
        merged += _chained(found, rank, name)
        shown = rules_apply(merged, rules, k=limit + 5, context_price=context_price, pinned=pinned)
        if len(shown) >= limit + 5:
            break
    return _products(shown, rules, limit), tried


def _products(shown: list[Shown], rules: Rules, limit: int) -> list[ServedItem]:
    """The products of the slot, read now (a few spare candidates stand in for any deactivated,
    or out of stock, since this process's catalog snapshot)."""
    by_sku = product_cards(skus=[s.candidate.sku for s in shown], in_stock_only=rules.in_stock_only)
    items: list[ServedItem] = []
    for s in shown:
        product = by_sku.get(s.candidate.sku)
        if product is None or len(items) == limit:
            continue
        reason = {**s.candidate.reason, **({"rules": list(s.rules)} if s.rules else {})}
        items.append(ServedItem(product, len(items) + 1, round(s.candidate.score, 6), reason))
    return items


def _explore(spec: CampaignSpec, situation: Situation, items: list[ServedItem], limit: int) -> list[ServedItem]:
    """Reorder the slot by the campaign's exploration policy, with each item's propensity."""
    rng = random.Random()  # noqa: S311 (exploration, not security)
    ranked = [item.product.sku for item in items]
    if spec.exploration == Campaign.Exploration.EPSILON_GREEDY:
        explored = exploration.epsilon_greedy(ranked, limit, spec.exploration_rate, rng)
    else:
        explored = exploration.thompson(ranked, limit, campaign_click_stats(spec.id), rng)
    by_sku = {item.product.sku: item for item in items}
    return [
        replace(by_sku[sku], position=position, propensity=round(propensity, 6))
        for position, (sku, propensity) in enumerate(zip(explored.items, explored.propensities, strict=True), start=1)
    ]


def campaign_click_stats(campaign_id: int) -> dict[str, tuple[int, int]]:
    """``{sku: (impressions, clicks)}`` of a campaign's items, for Thompson sampling (cached 5 minutes)."""
    key = f"personalization:campaign-stats:{campaign_id}"
    stats: dict[str, tuple[int, int]] | None = cache.get(key)
    if stats is None:
        stats = {}
        impressions: dict[str, int] = {}
        for items in Exposure.objects.filter(campaign_id=campaign_id, outcomes__kind="impression").values_list(
            "items", flat=True
        ):
            for item in items:
                impressions[item["sku"]] = impressions.get(item["sku"], 0) + 1
        clicks: dict[str, int] = {}
        for sku in ExposureOutcome.objects.filter(exposure__campaign_id=campaign_id, kind="click").values_list(
            "sku", flat=True
        ):
            clicks[sku] = clicks.get(sku, 0) + 1
        stats = {sku: (count, clicks.get(sku, 0)) for sku, count in impressions.items()}
        cache.set(key, stats, 300)
    return stats


def serve_inside(
    request: ServeRequest,
    spec: PlacementSpec,
    now: datetime,
    allowed: bool,
    mirror_entries: Sequence[bytes | None] | None = None,
    listed: Sequence[bytes | None] = (),
) -> Served:
    """The answer, as ``serve`` describes; ``mirror_entries``: the visitor's live profile as read
    from the mirror with their consent (``tracking.live_mirror``), if it was; ``listed``: their
    lists scored with their session (``personalization.session_lists``), as read with it."""
    situation = _situation(request, allowed, mirror_entries, listed)
    campaign = campaign_choose([c.choice for c in spec.campaigns], visitor_facts(request, situation.visit, now), now)
    chosen = next((c for c in spec.campaigns if campaign is not None and c.id == campaign.id), None)
    if chosen is None:
        chosen = CampaignSpec(
            0, "", 0, "trending", (), None, CampaignChoice(0, 0, Audience()), Rules(), False, None, True, "none", 0.0
        )
    limit = slot_limit(request, spec, chosen)
    items, tried = _fill(chosen, situation, limit, now)
    if chosen.exploration != Campaign.Exploration.NONE and items:
        items = _explore(chosen, situation, items, limit)
    strategies = [item.reason.get("strategy", "") for item in items]
    answered = [name for name in dict.fromkeys((chosen.strategy, *chosen.fallbacks)) if name in strategies]
    personalized = situation.visit.personalization_allowed and any(s in PERSONAL for s in strategies)
    note = ""
    if not situation.visit.personalization_allowed:
        note = "no personalization consent"
    elif not personalized and chosen.strategy in PERSONAL:
        note = "cold start: nothing known of this visitor yet"
    return Served(
        rec_id=uuid.uuid4(),
        placement=spec.key,
        campaign=chosen if chosen.id else None,
        strategy=answered[0] if answered else chosen.strategy,  # the first of the chain that gave items
        items=items,
        personalized=personalized,
        note=note if chosen.id else (note or "no campaign matches this visitor"),
        strategies_tried=tried,
    )


def slot_limit(request: ServeRequest, spec: PlacementSpec, campaign: CampaignSpec | None) -> int:
    """The request's limit, else the campaign's, else the placement's; at most 50."""
    return min(request.limit or (campaign.limit if campaign else None) or spec.default_limit, 50)
