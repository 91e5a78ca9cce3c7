"""The strategies a campaign can use, each a function from a situation to ranked candidates.

``STRATEGY_FUNCTIONS`` maps each strategy to its function (tests register one that fails or is
slow); the recommenders behind them are in ``personalization.recommendations``."""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from personalization.campaign_rules import Candidate, VisitorFacts, in_category
from personalization.catalog_snapshot import catalog_snapshot
from personalization.model_store import active_model
from personalization.models import Product, Strategy
from personalization.recommendations import Context, Ranked, Visit, rank_for_visitor, rank_similar
from personalization.serving.requests import ServeRequest, Situation


def visitor_facts(request: ServeRequest, visit: Visit, now: datetime) -> VisitorFacts:
    profile = visit.profile if visit.personalization_allowed else None
    return VisitorFacts(
        returning=profile is not None and profile.returning(now),
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


def _candidates(ranked: Ranked) -> list[Candidate]:
    """Ranked rows as candidates, described by this process's catalog snapshot (no query)."""
    model = ranked.model
    if model is None or not ranked.rows:
        return []
    snapshot = catalog_snapshot(model)
    rows = ranked.rows
    skus, prices, in_stock = (
        model.skus[rows].tolist(),
        snapshot.prices[rows].tolist(),
        snapshot.in_stock[rows].tolist(),
    )
    return [
        Candidate(str(skus[i]), score, snapshot.categories[row], snapshot.brands[row], prices[i], in_stock[i], reason)
        for i, (row, score, reason) in enumerate(zip(rows, ranked.scores, ranked.reasons, strict=True))
    ]


def pinned_candidates(skus: Sequence[str]) -> dict[str, Candidate]:
    """The active ones of these products as candidates to pin, by SKU: described by this process's
    catalog snapshot (no query), and read for those the model does not know."""
    model = active_model()
    known = [s for s in skus if model is not None and s in model.row_of_sku]
    found: dict[str, Candidate] = {}
    if model is not None and known:
        active = catalog_snapshot(model).active
        rows = [row for row in (model.row_of_sku[s] for s in known) if active[row]]
        pinned = Ranked(model, rows, [0.0] * len(rows), [{"recommender": "pinned"} for _ in rows], "pinned", False)
        found = {candidate.sku: candidate for candidate in _candidates(pinned)}
    if unknown := [s for s in skus if s not in known]:
        products = Product.objects.select_related("category").filter(sku__in=unknown, is_active=True)
        found.update({p.sku: candidate_of(p, 0.0, {"recommender": "pinned"}) for p in products})
    return found


def _related(seeds: Sequence[str], kind: str, k: int, context: Context) -> list[Candidate]:
    """Items related to one product or several (a cart): each one's neighbours, scores summed."""
    totals: dict[str, Candidate] = {}
    for seed in seeds:
        for candidate in _candidates(rank_similar(seed, k, kind, replace(context, product=seed))):
            known = totals.get(candidate.sku)
            totals[candidate.sku] = candidate if known is None else replace(known, score=known.score + candidate.score)
    return sorted((c for c in totals.values() if c.sku not in seeds), key=lambda c: -c.score)


def _strategy(name: str, situation: Situation, k: int) -> list[Candidate]:
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
        ranked = rank_for_visitor(request.subject, context, k, name, visit=visit)
        return _candidates(ranked) if ranked.strategy == name else []
    if name in ("similar", "bought_together", "viewed_together", "upsell"):
        return _related(seeds, "similar" if name == "upsell" else name, k, context)
    if name == "cross_sell":
        product = situation.context_product
        own = [product.category_path] if product is not None and product.category_path else []
        related = _related(seeds, "bought_together", k, context) or _related(seeds, "viewed_together", k, context)
        return [c for c in related if not (own and in_category(c.category, own))]
    if name == "recently_viewed":
        viewed = [s for s in (visit.profile.recently_viewed if visit.profile else []) if s != request.product]
        model = active_model()
        if model is None:
            return []
        rows = [model.row_of_sku[s] for s in viewed if s in model.row_of_sku]
        ranked = Ranked(
            model, rows, [float(-i) for i in range(len(rows))], [{"recommender": name}] * len(rows), name, True
        )
        return _candidates(ranked)
    raise ValueError(f"unknown strategy {name!r}")


StrategyFunction = Callable[[str, Situation, int], list[Candidate]]
STRATEGY_FUNCTIONS: dict[str, StrategyFunction] = dict.fromkeys(Strategy.values, _strategy)
"""The function behind each strategy (tests register one that fails or is slow)."""
