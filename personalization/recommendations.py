"""What to show a visitor: the entry points the serving layer calls.

``recommendations_for_visitor(subject, context, k, strategy)`` and ``similar_items(sku, k, kind)``
answer from the active model version (``model_store.active_model``), the visitor's live profile
(what they viewed and put in their cart a second ago) and their consent:

- without ``personalization`` consent nothing personal is used: the answer is what is trending
  in the context (the category on the page, the country of the request) and says it is not
  personalized;
- a visitor the model does not know and who has done nothing yet gets the same (cold start);
- otherwise the chosen recommender scores every item from the person's history and session.

Inactive products are never returned, nor out-of-stock ones unless the context allows it, nor the
product on the page or what the context excludes. Each item carries the reason it is there.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from consent.selectors import consent_allows, linked_user, subject_hash
from consent.subjects import Subject
from personalization.model_store import LoadedModel, active_model
from personalization.models import Product
from personalization.recommenders.base import ItemToItem, Visitors, top_k
from personalization.recommenders.hybrid import Hybrid
from personalization.selectors import bestsellers, product_get
from tracking.selectors import LiveProfile, live_profile

PERSONAL_STRATEGIES = ("personalized", "buy_again", "ease", "lightfm", "content", "bought_together", "viewed_together")
STRATEGIES = (*PERSONAL_STRATEGIES, "trending", "popular")
SIMILAR_KINDS = {"similar": "content", "bought_together": "bought_together", "viewed_together": "viewed_together"}
CART_WEIGHT = 2.0  # an item in the cart says more than one viewed


class UnknownStrategy(ValueError):
    pass


@dataclass(frozen=True)
class Context:
    """Where the list is shown: the product and category on the page, the request's country."""

    product: str = ""  # SKU
    category: str = ""  # category path; its subtree is kept
    country: str = ""
    exclude: frozenset[str] = frozenset()  # SKUs not to show (e.g. what is in the cart)
    exclude_purchased: bool = False  # only what the person has not bought (discovery lists)
    in_stock_only: bool = True


@dataclass(frozen=True)
class Recommendation:
    product: Product
    score: float
    reason: dict[str, Any]  # {"recommender": ..., "share": ...} or {"recommender": ..., "because": SKU}


@dataclass(frozen=True)
class Recommendations:
    items: list[Recommendation]
    strategy: str  # what produced the list (may differ from the one asked for: see note)
    personalized: bool
    model_version: int | None
    note: str = ""  # why the list is not what was asked for: no consent, cold start, no model
    signals: list[str] = field(default_factory=list)  # what of the person was used: history, session, country


def _subject_hashes(subject: Subject) -> list[str]:
    hashes = []
    user_id = subject.user_id or (linked_user(subject.anonymous_id) or "" if subject.anonymous_id else "")
    if user_id:
        hashes.append(subject_hash("user", user_id))
    if subject.anonymous_id:
        hashes.append(subject_hash("anonymous", subject.anonymous_id))
    return hashes


def _session(model: LoadedModel, profile: LiveProfile | None) -> sp.csr_matrix:
    """The live profile as item weights: the newest view weighs most, the cart more."""
    weights: dict[int, float] = {}
    if profile is not None:
        viewed = [model.row_of_sku[s] for s in profile.recently_viewed if s in model.row_of_sku]
        for position, row in enumerate(viewed):
            weights[row] = weights.get(row, 0.0) + 1.0 / (1 + position)
        for sku in profile.cart:
            if sku in model.row_of_sku:
                weights[model.row_of_sku[sku]] = weights.get(model.row_of_sku[sku], 0.0) + CART_WEIGHT
    columns = np.array(sorted(weights), dtype=np.int64)
    values = np.array([weights[c] for c in columns], dtype=np.float64)
    return sp.csr_matrix((values, (np.zeros(len(columns), dtype=np.int64), columns)), shape=(1, model.n_items))


def _available(candidates: list[int], model: LoadedModel, context: Context, k: int) -> list[tuple[int, Product]]:
    """The first ``k`` candidates (item rows, best first) that may be shown, with their products:
    one light query for which are active (and in stock), one for the ``k`` products shown."""
    ids = [int(model.product_ids[row]) for row in candidates]
    allowed = Product.objects.filter(pk__in=ids, is_active=True)
    if context.in_stock_only:
        allowed = allowed.filter(in_stock=True)
    showable = set(allowed.exclude(sku__in=[context.product, *context.exclude]).values_list("pk", flat=True))
    chosen = [(row, pk) for row, pk in zip(candidates, ids, strict=True) if pk in showable][:k]
    products = Product.objects.select_related("category").in_bulk([pk for _, pk in chosen])
    return [(row, products[pk]) for row, pk in chosen if pk in products]


def _ranked(scores: np.ndarray, model: LoadedModel, context: Context, limit: int, excluded: np.ndarray) -> list[int]:
    """The best ``limit`` item rows by score, in the context's category, not excluded."""
    scores = np.array(scores, dtype=np.float64)
    if context.category:
        scores[~model.in_category(context.category)] = -np.inf
    scores[excluded] = -np.inf
    return [int(i) for i in top_k(scores, min(int(np.isfinite(scores).sum()), limit))]


def _select(
    scores: np.ndarray, model: LoadedModel, context: Context, k: int, excluded: np.ndarray
) -> list[tuple[int, Product]]:
    """The best ``k`` items that may be shown; candidates are checked against the catalog in
    growing chunks (one query each), so a deactivated product is never shown, even in the
    minute after it was deactivated."""
    ranked = _ranked(scores, model, context, 10 * k + 200, excluded)
    chosen: list[tuple[int, Product]] = []
    start = 0
    while len(chosen) < k and start < len(ranked):
        size = 3 * k + 20 if start == 0 else 10 * k + 200
        chosen += _available(ranked[start : start + size], model, context, k - len(chosen))
        start += size
    return chosen


def _excluded(model: LoadedModel, context: Context, row: int) -> np.ndarray:
    excluded = np.zeros(model.n_items, dtype=bool)
    for sku in (context.product, *context.exclude):
        if sku in model.row_of_sku:
            excluded[model.row_of_sku[sku]] = True
    buy_again = model.hybrid.components.get("buy_again")
    if context.exclude_purchased and row >= 0 and buy_again is not None:
        frequency = buy_again.frequency  # type: ignore[attr-defined]
        excluded[frequency.indices[frequency.indptr[row] : frequency.indptr[row + 1]]] = True
    return excluded


def _non_personal(model: LoadedModel | None, context: Context, k: int, strategy: str, note: str) -> Recommendations:
    """What is trending (or most popular) in the context; without a model, the recent bestsellers."""
    if model is None:
        products = bestsellers(limit=k * 3 + len(context.exclude) + 1)
        if context.category:
            products = [
                p for p in products if p.category and (p.category.path + " > ").startswith(context.category + " > ")
            ]
        products = [p for p in products if p.sku not in context.exclude and p.sku != context.product][:k]
        return Recommendations(
            [Recommendation(p, 0.0, {"recommender": "bestsellers"}) for p in products],
            "bestsellers",
            personalized=False,
            model_version=None,
            note=note or "no trained model yet",
        )
    name = "popular" if strategy == "popular" else "trending"
    component = model.hybrid.components[name]
    visitors = Visitors(
        rows=np.array([-1]),
        history=sp.csr_matrix((1, model.n_items)),
        session=sp.csr_matrix((1, model.n_items)),
        countries=[context.country],
    )
    scores = component.score(visitors)[0]
    chosen = _select(scores, model, context, k, _excluded(model, context, -1))
    return Recommendations(
        [Recommendation(p, float(scores[row]), {"recommender": name}) for row, p in chosen],
        name,
        personalized=False,
        model_version=model.version_id,
        note=note,
        signals=["country"] if context.country and name == "trending" else [],
    )


@dataclass(frozen=True)
class Visit:
    """What a caller already knows of the visitor (the serving layer asks once for a request)."""

    personalization_allowed: bool
    profile: LiveProfile | None


def recommendations_for_visitor(
    subject: Subject,
    context: Context | None = None,
    k: int = 10,
    strategy: str = "personalized",
    *,
    visit: Visit | None = None,
) -> Recommendations:
    """The ``k`` products to show this visitor now, best first, with the reason for each."""
    if strategy not in STRATEGIES:
        raise UnknownStrategy(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    context = context or Context()
    model = active_model()
    if strategy not in PERSONAL_STRATEGIES:
        return _non_personal(model, context, k, strategy, "")
    allowed = (
        visit.personalization_allowed
        if visit is not None
        else consent_allows(subject=subject, purpose="personalization", jurisdiction=context.country or None)
    )
    if not allowed:
        return _non_personal(model, context, k, "trending", "no personalization consent")
    if model is None:
        return _non_personal(None, context, k, "trending", "")
    row = model.user_row(_subject_hashes(subject))
    profile = (
        visit.profile if visit is not None else live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id)
    )
    session = _session(model, profile)
    if row < 0 and session.nnz == 0:
        return _non_personal(model, context, k, "trending", "cold start: nothing known of this visitor yet")
    country = context.country or (str(model.user_countries[row]) if row >= 0 else "")
    visitors = Visitors(
        rows=np.array([row]),
        history=sp.csr_matrix(model.history[row]) if row >= 0 else sp.csr_matrix((1, model.n_items)),
        session=session,
        countries=[country],
        new_items_only=context.exclude_purchased,
    )
    hybrid = model.hybrid
    recommender = hybrid if strategy == "personalized" else hybrid.components.get(strategy)
    if recommender is None:
        return _non_personal(model, context, k, "trending", f"the model has no {strategy} recommender")
    if isinstance(recommender, Hybrid):
        parts = recommender.contributions(visitors)
        scores = sum((part[0] for part in parts.values()), np.zeros(model.n_items))
    else:
        parts, scores = {}, recommender.score(visitors)[0]
    chosen = _select(scores, model, context, k, _excluded(model, context, row))
    items = [Recommendation(p, float(scores[r]), _reason(strategy, parts, r)) for r, p in chosen]
    signals = [
        name for name, used in (("history", row >= 0), ("session", session.nnz > 0), ("country", bool(country))) if used
    ]
    return Recommendations(items, strategy, personalized=True, model_version=model.version_id, signals=signals)


def _reason(strategy: str, parts: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    if not parts:
        return {"recommender": strategy}
    values = {name: float(part[0, row]) for name, part in parts.items()}
    best = max(values, key=lambda name: values[name])
    total = sum(v for v in values.values() if v > 0)
    return {"recommender": best, "share": round(values[best] / total, 3) if total > 0 else 1.0}


def similar_items(product: str, k: int = 10, kind: str = "similar") -> Recommendations:
    """Products related to one (by SKU): ``similar`` (content), ``bought_together`` or
    ``viewed_together``. Filled up with what is trending in its category when the model knows too
    few (a new product, a rare one)."""
    if kind not in SIMILAR_KINDS:
        raise UnknownStrategy(f"unknown kind {kind!r}; use one of {', '.join(SIMILAR_KINDS)}")
    model = active_model()
    anchor = product_get(sku=product)
    category = anchor.category.path if anchor is not None and anchor.category else ""
    context = Context(product=product, category=category)
    if model is None or product not in model.row_of_sku:
        fallback = _non_personal(model, context, k, "trending", "")
        return Recommendations(fallback.items, fallback.strategy, False, fallback.model_version, note="unknown product")
    component = model.hybrid.components.get(SIMILAR_KINDS[kind])
    chosen: list[tuple[int, Product]] = []
    if isinstance(component, ItemToItem):
        rows, scores = component.similar(model.row_of_sku[product], 3 * k + 20)
        chosen = _available([int(r) for r in rows], model, Context(product=product), k)
        by_row = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        items = [
            Recommendation(p, by_row[r], {"recommender": SIMILAR_KINDS[kind], "because": product}) for r, p in chosen
        ]
    else:
        items = []
    if len(items) < k:
        shown = frozenset(item.product.sku for item in items)
        fill = _non_personal(
            model, Context(product=product, category=category, exclude=shown), k - len(items), "trending", ""
        )
        items += fill.items
    return Recommendations(items, kind, personalized=False, model_version=model.version_id)
