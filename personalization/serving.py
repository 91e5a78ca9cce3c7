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
   cached), and the fallback is counted.
4. Exploration, when the campaign asks for it, reorders the slot and logs each item's propensity.

The exposure (rec_id, placement, campaign, strategy, items, positions, propensities) is logged by
the view through the event stream, never by an insert here.
"""

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from consent.selectors import consent_allows
from consent.subjects import Subject
from personalization import exploration
from personalization.campaign_rules import (
    Audience,
    Boost,
    CampaignChoice,
    Candidate,
    Pin,
    Rules,
    VisitorFacts,
    campaign_choose,
    in_category,
    rules_apply,
)
from personalization.model_store import active_pointer
from personalization.models import Campaign, Exposure, ExposureOutcome, Placement, Product, Strategy
from personalization.recommendations import (
    Context,
    Recommendation,
    Visit,
    recommendations_for_visitor,
    similar_items,
)
from tracking.selectors import LiveProfile, live_profile, purchased_skus

logger = logging.getLogger(__name__)

CAMPAIGNS_VERSION_KEY = "personalization:campaigns-version"
FALLBACK_LIST_SECONDS = 300
ANSWER_SECONDS = 60  # a non-personalized answer is shared this long
UPSELL_RATIO = 1.2  # an upsell is at least this much dearer than the product on the page, unless the campaign says


class UnknownPlacement(ValueError):
    pass


# --- the placements and campaigns, as serving needs them --------------------------------------------


@dataclass(frozen=True)
class CampaignSpec:
    id: int
    name: str
    version: int
    strategy: str
    fallbacks: tuple[str, ...]
    limit: int | None
    choice: CampaignChoice
    rules: Rules
    exclude_purchased: bool
    exclude_purchased_days: int | None
    exclude_in_cart: bool
    exploration: str
    exploration_rate: float


@dataclass(frozen=True)
class PlacementSpec:
    key: str
    name: str
    budget_ms: int
    default_limit: int
    campaigns: tuple[CampaignSpec, ...]


def _decimal(value: Any) -> float | None:
    return None if value is None else float(value)


def campaign_spec(campaign: Campaign) -> CampaignSpec:
    """What serving needs of a campaign (also what the admin's preview uses)."""
    rules = Rules(
        in_stock_only=campaign.in_stock_only,
        include_categories=tuple(campaign.include_categories or ()),
        exclude_categories=tuple(campaign.exclude_categories or ()),
        include_brands=frozenset(campaign.include_brands or ()),
        exclude_brands=frozenset(campaign.exclude_brands or ()),
        min_price=_decimal(campaign.min_price),
        max_price=_decimal(campaign.max_price),
        min_price_ratio=_decimal(campaign.min_price_ratio),
        max_price_ratio=_decimal(campaign.max_price_ratio),
        boosts=tuple(Boost(b["kind"], str(b["value"]), float(b["factor"])) for b in campaign.boosts or ()),
        pins=tuple(Pin(str(p["sku"]), int(p["position"])) for p in campaign.pins or ()),
        max_per_category=campaign.max_per_category,
        diversity=campaign.diversity,
    )
    if campaign.strategy == Strategy.UPSELL and rules.min_price_ratio is None:
        rules = replace(rules, min_price_ratio=UPSELL_RATIO)
    audience = Audience(
        visitors=campaign.audience_visitors,  # type: ignore[arg-type]
        customers=campaign.audience_customers,  # type: ignore[arg-type]
        countries=frozenset(c.upper() for c in campaign.audience_countries or ()),
        devices=frozenset(campaign.audience_devices or ()),
    )
    return CampaignSpec(
        id=campaign.pk,
        name=campaign.name,
        version=campaign.version,
        strategy=campaign.strategy,
        fallbacks=tuple(campaign.fallback_strategies or ()),
        limit=campaign.limit,
        choice=CampaignChoice(campaign.pk, campaign.priority, audience, campaign.starts_at, campaign.ends_at),
        rules=rules,
        exclude_purchased=campaign.exclude_purchased,
        exclude_purchased_days=campaign.exclude_purchased_days,
        exclude_in_cart=campaign.exclude_in_cart,
        exploration=campaign.exploration,
        exploration_rate=campaign.exploration_rate,
    )


_placements: dict[str, Any] = {"version": None, "checked": 0.0, "specs": {}}
_placements_lock = threading.Lock()


def campaigns_changed() -> None:
    """Every serving process reloads placements and campaigns (call after a change commits)."""
    cache.set(CAMPAIGNS_VERSION_KEY, uuid.uuid4().hex, None)


def placement_spec(key: str) -> PlacementSpec:
    """A placement with its active campaigns, from this process's copy (checked every second)."""
    now = time.monotonic()
    with _placements_lock:
        if now - _placements["checked"] >= settings.PZ_MODEL_CHECK_SECONDS:
            version = cache.get(CAMPAIGNS_VERSION_KEY)
            if version is None or version != _placements["version"]:
                _placements["specs"] = {}
                _placements["version"] = version
            _placements["checked"] = now
        specs: dict[str, PlacementSpec | None] = _placements["specs"]
        if key not in specs:
            placement = Placement.objects.filter(key=key, is_active=True).first()
            specs[key] = (
                None
                if placement is None
                else PlacementSpec(
                    placement.key,
                    placement.name,
                    placement.latency_budget_ms,
                    placement.default_limit,
                    tuple(campaign_spec(c) for c in placement.campaigns.filter(is_active=True).order_by("id")),
                )
            )
        spec = specs[key]
    if spec is None:
        raise UnknownPlacement(f"unknown placement {key!r}: create it in the admin (Placements)")
    return spec


def forget_placements() -> None:
    with _placements_lock:
        _placements.update(version=None, checked=0.0, specs={})


# --- one request -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeRequest:
    placement: str
    subject: Subject
    product: str = ""  # SKU of the product on the page
    category: str = ""  # category path of the page
    limit: int | None = None
    country: str = ""
    device: str = ""
    now: datetime | None = None


@dataclass(frozen=True)
class ServedItem:
    product: Product
    position: int
    score: float
    reason: dict[str, Any]
    propensity: float | None = None


@dataclass
class Served:
    rec_id: uuid.UUID
    placement: str
    campaign: CampaignSpec | None
    strategy: str
    items: list[ServedItem]
    personalized: bool
    note: str = ""
    fallback: str = ""  # "budget" or "error" when the precomputed list answered
    strategies_tried: list[str] = field(default_factory=list)
    model_version: int | None = None


@dataclass
class _Situation:
    """What the strategies know of the request."""

    request: ServeRequest
    visit: Visit
    context_product: Product | None
    cart: list[str]
    excluded: frozenset[str]


def _facts(request: ServeRequest, visit: Visit) -> VisitorFacts:
    profile = visit.profile if visit.personalization_allowed else None
    return VisitorFacts(
        returning=profile is not None and (profile.last_seen_at is not None),
        orders=profile.orders if profile is not None else 0,
        country=request.country,
        device=request.device,
    )


def _candidate(product: Product, score: float, reason: dict[str, Any]) -> Candidate:
    return Candidate(
        sku=product.sku,
        score=score,
        category=product.category.path if product.category_id and product.category else "",
        brand=product.brand,
        price=float(product.price),
        in_stock=product.in_stock,
        reason=reason,
    )


def _from_recommendations(items: Sequence[Recommendation]) -> list[tuple[Product, Candidate]]:
    return [(item.product, _candidate(item.product, item.score, item.reason)) for item in items]


def _related(seeds: Sequence[str], kind: str, k: int) -> list[tuple[Product, Candidate]]:
    """Items related to several products (a cart): each one's neighbours, scores summed."""
    totals: dict[str, tuple[Product, float, dict[str, Any]]] = {}
    for seed in seeds:
        for item in similar_items(seed, k, kind).items:
            if item.reason.get("because") != seed:
                continue  # the trending fill-up: not related to this seed
            product, score, reason = totals.get(item.product.sku, (item.product, 0.0, item.reason))
            totals[item.product.sku] = (product, score + item.score, reason)
    ranked = sorted(totals.values(), key=lambda entry: -entry[1])
    return [(p, _candidate(p, score, reason)) for p, score, reason in ranked if p.sku not in seeds]


def _strategy(name: str, situation: _Situation, k: int) -> list[tuple[Product, Candidate]]:
    request, visit = situation.request, situation.visit
    context = Context(
        product=request.product,
        category=request.category,
        country=request.country,
        exclude=situation.excluded,
        in_stock_only=False,  # the campaign's rules decide
    )
    seeds = [request.product] if request.product else situation.cart
    if name in ("personalized", "buy_again", "trending", "popular"):
        found = recommendations_for_visitor(request.subject, context, k, name, visit=visit)
        return _from_recommendations(found.items) if found.strategy == name else []
    if name in ("similar", "bought_together", "viewed_together", "upsell"):
        kind = "similar" if name == "upsell" else name
        return _related(seeds, kind, k)
    if name == "cross_sell":
        own = (
            [situation.context_product.category.path]
            if situation.context_product and situation.context_product.category
            else []
        )
        related = _related(seeds, "bought_together", k) or _related(seeds, "viewed_together", k)
        return [(p, c) for p, c in related if not (own and in_category(c.category, own))]
    if name == "recently_viewed":
        viewed = [s for s in (visit.profile.recently_viewed if visit.profile else []) if s != request.product]
        products = {p.sku: p for p in Product.objects.select_related("category").filter(sku__in=viewed, is_active=True)}
        return [
            (products[s], _candidate(products[s], float(-i), {"recommender": "recently_viewed"}))
            for i, s in enumerate(viewed)
            if s in products
        ]
    raise ValueError(f"unknown strategy {name!r}")


StrategyFunction = Callable[[str, _Situation, int], list[tuple[Product, Candidate]]]
STRATEGY_FUNCTIONS: dict[str, StrategyFunction] = dict.fromkeys(Strategy.values, _strategy)
"""The function behind each strategy (tests register one that fails or is slow)."""


# --- filling a slot ------------------------------------------------------------------------------------

PERSONAL = {"personalized", "buy_again", "recently_viewed"}


def _situation(request: ServeRequest, allowed: bool) -> _Situation:
    subject = request.subject
    profile: LiveProfile | None = (
        live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id) if allowed else None
    )
    context_product = (
        Product.objects.select_related("category").filter(sku=request.product).first() if request.product else None
    )
    return _Situation(
        request=request,
        visit=Visit(personalization_allowed=allowed, profile=profile),
        context_product=context_product,
        cart=list(profile.cart) if profile is not None else [],
        excluded=frozenset(),
    )


def _excluded_skus(spec: CampaignSpec, situation: _Situation, now: datetime) -> frozenset[str]:
    request = situation.request
    skus = {request.product} - {""}
    if spec.exclude_in_cart:
        skus |= set(situation.cart)
    if spec.exclude_purchased and situation.visit.personalization_allowed:
        since = now - timedelta(days=spec.exclude_purchased_days) if spec.exclude_purchased_days else None
        skus |= purchased_skus(user_id=request.subject.user_id, anonymous_id=request.subject.anonymous_id, since=since)
    return frozenset(skus)


def _chained(candidates: list[Candidate], rank: int) -> list[Candidate]:
    """Candidates of the ``rank``-th strategy of the chain, scored so that the main strategy's come
    first and each fallback's after (the rules then see one ranked list)."""
    if not candidates:
        return []
    scores = [c.score for c in candidates]
    low, span = min(scores), (max(scores) - min(scores)) or 1.0
    return [replace(c, score=(c.score - low) / span * 0.99 + 1000 - rank) for c in candidates]


def _fill(spec: CampaignSpec, situation: _Situation, limit: int, now: datetime) -> tuple[list[ServedItem], list[str]]:
    """The campaign's strategy, then its fallbacks, until the slot is full; the rules apply to all."""
    excluded = _excluded_skus(spec, situation, now)
    situation = replace(situation, excluded=excluded)
    rules = replace(spec.rules, exclude_skus=excluded)
    pins = [pin.sku for pin in rules.pins]
    pinned_products = {
        p.sku: p for p in Product.objects.select_related("category").filter(sku__in=pins, is_active=True)
    }
    pinned = {sku: _candidate(p, 0.0, {"recommender": "pinned"}) for sku, p in pinned_products.items()}
    products: dict[str, Product] = dict(pinned_products)
    merged: list[Candidate] = []
    tried: list[str] = []
    context_price = float(situation.context_product.price) if situation.context_product is not None else None
    shown = []
    for rank, name in enumerate(dict.fromkeys((spec.strategy, *spec.fallbacks))):
        try:
            found = STRATEGY_FUNCTIONS[name](name, situation, 3 * limit + 20)
        except Exception:
            logger.exception("strategy %s of campaign %s failed", name, spec.id)
            tried.append(f"{name} (failed)")
            continue
        tried.append(name)
        for product, _ in found:
            products.setdefault(product.sku, product)
        merged += _chained([replace(c, reason={**c.reason, "strategy": name}) for _, c in found], rank)
        shown = rules_apply(merged, rules, k=limit, context_price=context_price, pinned=pinned)
        if len(shown) >= limit:
            break
    items = [
        ServedItem(
            product=products[s.candidate.sku],
            position=s.position,
            score=round(s.candidate.score, 6),
            reason={**s.candidate.reason, **({"rules": list(s.rules)} if s.rules else {})},
        )
        for s in shown
    ]
    return items, tried


def _explore(spec: CampaignSpec, situation: _Situation, items: list[ServedItem], limit: int) -> list[ServedItem]:
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


def _serve_inside(request: ServeRequest, spec: PlacementSpec, now: datetime, allowed: bool) -> Served:
    situation = _situation(request, allowed)
    campaign = campaign_choose([c.choice for c in spec.campaigns], _facts(request, situation.visit), now)
    chosen = next((c for c in spec.campaigns if campaign is not None and c.id == campaign.id), None)
    if chosen is None:
        chosen = CampaignSpec(
            0, "", 0, "trending", (), None, CampaignChoice(0, 0, Audience()), Rules(), False, None, True, "none", 0.0
        )
    limit = _limit(request, spec, chosen)
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


# --- the budget and the precomputed list ---------------------------------------------------------------

_executor = ThreadPoolExecutor(max_workers=settings.PZ_SERVING_THREADS, thread_name_prefix="pz-serve")


def _limit(request: ServeRequest, spec: PlacementSpec, campaign: CampaignSpec | None) -> int:
    """The request's limit, else the campaign's, else the placement's; at most 50."""
    return min(request.limit or (campaign.limit if campaign else None) or spec.default_limit, 50)


def _in_worker(request: ServeRequest, spec: PlacementSpec, now: datetime, allowed: bool) -> Served:
    close_old_connections()
    try:
        return _serve_inside(request, spec, now, allowed)
    finally:
        close_old_connections()


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
    products = Product.objects.select_related("category").in_bulk([pk for pk, _ in entries])
    return [
        ServedItem(products[pk], position, score, {"recommender": "trending", "strategy": "trending"})
        for position, (pk, score) in enumerate(((pk, s) for pk, s in entries if pk in products), start=1)
    ]


def _answer_key(request: ServeRequest, spec: PlacementSpec) -> str:
    """The cache key of a non-personalized answer: everything it depends on."""
    campaigns = ",".join(f"{c.id}.{c.version}" for c in spec.campaigns)
    model = active_pointer()
    parts = (
        spec.key,
        campaigns,
        model,
        request.product,
        request.category,
        request.country,
        request.device,
        request.limit,
    )
    return "personalization:answer:" + hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


def _cached(key: str) -> Served | None:
    """A non-personalized answer from the cache, with a rec_id of its own; products deactivated
    since are left out."""
    entry: dict[str, Any] | None = cache.get(key)
    if entry is None:
        return None
    products = Product.objects.select_related("category").filter(is_active=True).in_bulk([i[0] for i in entry["items"]])
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
    allowed = consent_allows(subject=request.subject, purpose="personalization", jurisdiction=request.country or None)
    key = None
    if not allowed:  # the answer does not depend on who asks: shared through the cache
        key = _answer_key(request, spec)
        cached = _cached(key)
        if cached is not None:
            return cached
    future = _executor.submit(_in_worker, request, spec, now, allowed)
    try:
        served = future.result(timeout=spec.budget_ms / 1000)
    except FutureTimeout:
        reason = "budget"
    except Exception:
        logger.exception("serving placement %s failed", spec.key)
        reason = "error"
    else:
        if key is not None and not served.personalized and served.items:
            _cache_answer(key, served)
        return served
    fallback_count(spec.key, reason)
    return Served(
        rec_id=uuid.uuid4(),
        placement=spec.key,
        campaign=None,
        strategy="trending",
        items=precomputed_list(spec, request, _limit(request, spec, None)),
        personalized=False,
        note=f"the precomputed list ({'over the latency budget' if reason == 'budget' else 'an error'})",
        fallback=reason,
    )
