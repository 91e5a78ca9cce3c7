"""The strategies a campaign can use, each a function from a situation to ranked candidates.

``STRATEGY_FUNCTIONS`` maps each strategy to its function (tests register one that fails or is
slow); the recommenders behind them are in ``personalization.recommendations``."""

from collections.abc import Callable, Sequence
from typing import Any

from personalization.campaign_rules import Candidate, VisitorFacts, in_category
from personalization.models import Product, Strategy
from personalization.recommendations import Context, Recommendation, Visit, recommendations_for_visitor, similar_items
from personalization.serving.requests import ServeRequest, Situation


def visitor_facts(request: ServeRequest, visit: Visit) -> VisitorFacts:
    profile = visit.profile if visit.personalization_allowed else None
    return VisitorFacts(
        returning=profile is not None and (profile.last_seen_at is not None),
        orders=profile.orders if profile is not None else 0,
        country=request.country,
        device=request.device,
    )


def candidate_of(product: Product, score: float, reason: dict[str, Any]) -> Candidate:
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
    return [(item.product, candidate_of(item.product, item.score, item.reason)) for item in items]


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
    return [(p, candidate_of(p, score, reason)) for p, score, reason in ranked if p.sku not in seeds]


def _strategy(name: str, situation: Situation, k: int) -> list[tuple[Product, Candidate]]:
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
            (products[s], candidate_of(products[s], float(-i), {"recommender": "recently_viewed"}))
            for i, s in enumerate(viewed)
            if s in products
        ]
    raise ValueError(f"unknown strategy {name!r}")


StrategyFunction = Callable[[str, Situation, int], list[tuple[Product, Candidate]]]
STRATEGY_FUNCTIONS: dict[str, StrategyFunction] = dict.fromkeys(Strategy.values, _strategy)
"""The function behind each strategy (tests register one that fails or is slow)."""
