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

import hashlib
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from consent.selectors import consent_allows, linked_user, subject_hash
from consent.subjects import Subject
from personalization import session_lists
from personalization.catalog_snapshot import catalog_snapshot
from personalization.model_store import LoadedModel, active_model
from personalization.models import Product
from personalization.recommenders.base import ItemToItem, Visitors, one_row, top_k
from personalization.recommenders.hybrid import Hybrid, TopLists, leading_parts
from personalization.selectors import bestsellers, product_get
from tracking.selectors import LiveProfile, live_profile

PERSONAL_STRATEGIES = ("personalized", "buy_again", "ease", "lightfm", "content", "bought_together", "viewed_together")
STRATEGIES = (*PERSONAL_STRATEGIES, "trending", "popular")
SIMILAR_KINDS = {"similar": "content", "bought_together": "bought_together", "viewed_together": "viewed_together"}
CART_WEIGHT = 2.0  # an item in the cart says more than one viewed


live_scoring_refused: ContextVar[bool] = ContextVar("live_scoring_refused", default=False)
"""Set by serving while it runs in the request's own thread (``personalization.serving``)."""


class LiveScoringRefused(Exception):
    """Raised instead of scoring a visitor over every item while ``live_scoring_refused`` is set:
    serving then hands the request to its budget's worker, which may take that long."""


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


def _session(model: LoadedModel, profile: LiveProfile | None) -> dict[int, float]:
    """The live profile as item weights: the newest view weighs most, the cart more."""
    weights: dict[int, float] = {}
    if profile is not None:
        viewed = [model.row_of_sku[s] for s in profile.recently_viewed if s in model.row_of_sku]
        for position, row in enumerate(viewed):
            weights[row] = weights.get(row, 0.0) + 1.0 / (1 + position)
        for sku in profile.cart:
            if sku in model.row_of_sku:
                weights[model.row_of_sku[sku]] = weights.get(model.row_of_sku[sku], 0.0) + CART_WEIGHT
    return weights


def session_matrix(model: LoadedModel, weights: dict[int, float]) -> sp.csr_matrix:
    """The weights as a 1 × items CSR matrix (built from its arrays: scipy's conversion from
    coordinates cost a tenth of a request's scoring)."""
    columns = sorted(weights)
    values = np.array([weights[c] for c in columns], dtype=np.float64)
    indptr = np.array([0, len(columns)], dtype=np.int32)
    return sp.csr_matrix((values, np.array(columns, dtype=np.int32), indptr), shape=(1, model.n_items))


@dataclass
class Ranked:
    """Item rows of the active model, best first, that may be shown as far as this process's
    catalog snapshot knows, with their scores and reasons: what the serving layer filters with
    the campaign's rules before it reads the few products it shows."""

    model: LoadedModel | None
    rows: list[int]
    scores: list[float]
    reasons: list[dict[str, Any]]
    strategy: str
    personalized: bool
    note: str = ""
    signals: list[str] = field(default_factory=list)


def _showable(model: LoadedModel, context: Context, excluded: np.ndarray) -> np.ndarray:
    """Which rows may be shown: active (and in stock, if the context says), in the context's
    category, not excluded."""
    snapshot = catalog_snapshot(model)
    allowed: np.ndarray = snapshot.active & ~excluded
    if context.in_stock_only:
        allowed &= snapshot.in_stock
    if context.category:
        allowed &= model.in_category(context.category)
    return allowed


def _rows(scores: np.ndarray, model: LoadedModel, context: Context, limit: int, excluded: np.ndarray) -> list[int]:
    """The best ``limit`` rows by score that may be shown (``_showable``)."""
    allowed = _showable(model, context, excluded)
    scores = np.where(allowed, np.asarray(scores, dtype=np.float64), -np.inf)
    return [int(i) for i in top_k(scores, min(int(allowed.sum()), limit))]


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


def _ranked(
    model: LoadedModel, scores: np.ndarray, context: Context, k: int, excluded: np.ndarray, **fields: Any
) -> Ranked:
    reason = fields.pop("reason", None)
    parts = fields.pop("parts", {})
    rows = _rows(scores, model, context, k, excluded)
    reasons = _reasons(fields["strategy"], parts, rows) if reason is None else [dict(reason) for _ in rows]
    return Ranked(model, rows, [float(scores[row]) for row in rows], reasons, **fields)


def _non_personal(model: LoadedModel | None, context: Context, k: int, strategy: str, note: str) -> Ranked:
    """What is trending (or most popular) in the context."""
    name = "popular" if strategy == "popular" else "trending"
    if model is None:
        return Ranked(None, [], [], [], name, personalized=False, note=note or "no trained model yet")
    visitors = Visitors(
        rows=np.array([-1]),
        history=sp.csr_matrix((1, model.n_items)),
        session=sp.csr_matrix((1, model.n_items)),
        countries=[context.country],
    )
    scores = model.hybrid.components[name].score(visitors)[0]
    return _ranked(
        model,
        scores,
        context,
        k,
        _excluded(model, context, -1),
        reason={"recommender": name},
        strategy=name,
        personalized=False,
        note=note,
        signals=["country"] if context.country and name == "trending" else [],
    )


def products_for(ranked: Ranked, context: Context, k: int) -> list[Recommendation]:
    """The products of the best ``k`` ranked rows, read now: active, and in stock if the context
    says (one query, with a few spare rows for what changed since the snapshot)."""
    if ranked.model is None or not ranked.rows:
        return []
    model = ranked.model
    wanted = ranked.rows[: k + 10]
    products = Product.objects.select_related("category").filter(
        pk__in=[int(model.product_ids[row]) for row in wanted], is_active=True
    )
    if context.in_stock_only:
        products = products.filter(in_stock=True)
    by_pk = {product.pk: product for product in products}
    shown = []
    for row, score, reason in zip(ranked.rows, ranked.scores, ranked.reasons, strict=False):
        product = by_pk.get(int(model.product_ids[row]))
        if product is not None:
            shown.append(Recommendation(product, score, reason))
    return shown[:k]


@dataclass(frozen=True)
class Visit:
    """What a caller already knows of the visitor (the serving layer asks once for a request)."""

    personalization_allowed: bool
    profile: LiveProfile | None
    # The visitor's lists scored when their session last changed, as read from Redis (raw; see
    # ``personalization.session_lists``): used when one was scored from what they are now.
    session_lists: Sequence[bytes | None] = ()


def rank_for_visitor(
    subject: Subject,
    context: Context | None = None,
    k: int = 10,
    strategy: str = "personalized",
    *,
    visit: Visit | None = None,
) -> Ranked:
    """The best ``k`` item rows for this visitor now (see ``recommendations_for_visitor``)."""
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
    profile = (
        visit.profile if visit is not None else live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id)
    )
    row, weights, country = scoring_inputs(model, subject, profile, context.country)
    if row < 0 and not weights:
        return _non_personal(model, context, k, "trending", "cold start: nothing known of this visitor yet")
    if strategy == "personalized" and not context.exclude_purchased:
        if not weights:
            listed = _precomputed(model, context, k, row, country)
        else:
            listed = _session_listed(model, context, k, row, weights, country, visit)
        if listed is not None:
            return listed
    if live_scoring_refused.get():
        raise LiveScoringRefused(strategy)
    session = session_matrix(model, weights)
    visitors = Visitors(
        rows=np.array([row]),
        history=one_row(model.history, row) if row >= 0 else sp.csr_matrix((1, model.n_items)),
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
    signals = [
        name for name, used in (("history", row >= 0), ("session", session.nnz > 0), ("country", bool(country))) if used
    ]
    return _ranked(
        model,
        scores,
        context,
        k,
        _excluded(model, context, row),
        parts=parts,
        strategy=strategy,
        personalized=True,
        signals=signals,
    )


def scoring_inputs(
    model: LoadedModel, subject: Subject, profile: LiveProfile | None, country: str = ""
) -> tuple[int, dict[int, float], str]:
    """What the blend scores a visitor from: their row in the model (-1: unknown), their
    session's item weights, and the country (the request's, else the person's)."""
    row = model.user_row(_subject_hashes(subject))
    return row, _session(model, profile), country or (str(model.user_countries[row]) if row >= 0 else "")


def session_fingerprint(model: LoadedModel, row: int, weights: dict[int, float], country: str) -> bytes:
    """A digest of everything a visitor's scores with a session depend on (``scoring_inputs`` and
    the model): two equal fingerprints, the same scores."""
    inputs = (model.version_id, model.revision, row, sorted(weights.items()), country)
    return hashlib.blake2b(repr(inputs).encode(), digest_size=16).digest()


def _precomputed(model: LoadedModel, context: Context, k: int, row: int, country: str) -> Ranked | None:
    """The person's best ``k`` rows from the list computed with the model (``Hybrid.top_lists``).
    None when there is no such list (an unknown person, another country asked for, an older
    version), or when ``_listed`` finds too few in it."""
    top = model.top
    if top is None or row < 0 or country != str(model.user_countries[row]):
        return None
    return _listed(model, context, k, row, top.one(row), ["history", "country"] if country else ["history"])


def _session_listed(
    model: LoadedModel, context: Context, k: int, row: int, weights: dict[int, float], country: str, visit: Visit | None
) -> Ranked | None:
    """The visitor's best ``k`` rows from the list scored when their session last changed, if one
    was scored from exactly what they are now (``session_lists``); else None (score live)."""
    if visit is None or not any(visit.session_lists):
        return None
    listed = session_lists.matching(visit.session_lists, session_fingerprint(model, row, weights, country))
    if listed is None:
        return None
    signals = [name for name, used in (("history", row >= 0), ("session", True), ("country", bool(country))) if used]
    return _listed(model, context, k, row, listed, signals)


def _listed(
    model: LoadedModel, context: Context, k: int, row: int, listed: TopLists, signals: list[str]
) -> Ranked | None:
    """The best ``k`` rows of one visitor's list (best first, unfiltered), filtered by
    ``_showable`` as ``_rows`` filters a live score: the same rows, without scoring every item.
    None when the filters leave fewer than ``k`` of a list that may have had more."""
    allowed = _showable(model, context, _excluded(model, context, row))
    candidates = np.asarray(listed.rows, dtype=np.int64)
    kept = np.flatnonzero(allowed[candidates])[:k]
    if kept.size < k and candidates.size < model.n_items and kept.size < int(allowed.sum()):
        return None
    leading, shares = listed.leading[kept].tolist(), listed.shares[kept].tolist()
    return Ranked(
        model,
        candidates[kept].tolist(),
        listed.scores[kept].tolist(),
        [{"recommender": listed.parts[p], "share": share / 1000} for p, share in zip(leading, shares, strict=True)],
        "personalized",
        personalized=True,
        signals=signals,
    )


def recommendations_for_visitor(
    subject: Subject,
    context: Context | None = None,
    k: int = 10,
    strategy: str = "personalized",
    *,
    visit: Visit | None = None,
) -> Recommendations:
    """The ``k`` products to show this visitor now, best first, with the reason for each."""
    context = context or Context()
    ranked = rank_for_visitor(subject, context, k + 10, strategy, visit=visit)
    if ranked.model is None:
        return _bestsellers(context, k, ranked.note)
    return Recommendations(
        products_for(ranked, context, k),
        ranked.strategy,
        personalized=ranked.personalized,
        model_version=ranked.model.version_id,
        note=ranked.note,
        signals=ranked.signals,
    )


def _bestsellers(context: Context, k: int, note: str) -> Recommendations:
    """Before any training: the recent bestsellers, from the orders."""
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


def _reasons(strategy: str, parts: dict[str, np.ndarray], rows: list[int]) -> list[dict[str, Any]]:
    """Why each row is there: the part that weighs most in its score, and its share of the positive parts."""
    if not parts or not rows:
        return [{"recommender": strategy} for _ in rows]
    names = list(parts)
    leading, shares = leading_parts(np.stack([np.asarray(part[0, rows], dtype=np.float64) for part in parts.values()]))
    return [
        {"recommender": names[part], "share": share}
        for part, share in zip(leading.tolist(), shares.tolist(), strict=True)
    ]


def rank_similar(product: str, k: int = 10, kind: str = "similar", context: Context | None = None) -> Ranked:
    """Item rows related to one product (by SKU), best first: ``similar`` (content),
    ``bought_together`` or ``viewed_together``; empty when the model does not know the product."""
    if kind not in SIMILAR_KINDS:
        raise UnknownStrategy(f"unknown kind {kind!r}; use one of {', '.join(SIMILAR_KINDS)}")
    context = context or Context(product=product)
    model = active_model()
    component = model.hybrid.components.get(SIMILAR_KINDS[kind]) if model is not None else None
    if model is None or product not in model.row_of_sku or not isinstance(component, ItemToItem):
        return Ranked(model, [], [], [], kind, personalized=False, note="unknown product")
    neighbours, values = component.similar(model.row_of_sku[product], 10 * k + 50)
    scores = np.full(model.n_items, -np.inf)
    scores[neighbours] = values
    excluded = _excluded(model, context, -1) | ~np.isfinite(scores)
    reason = {"recommender": SIMILAR_KINDS[kind], "because": product}
    return _ranked(model, scores, context, k, excluded, reason=reason, strategy=kind, personalized=False)


def similar_items(product: str, k: int = 10, kind: str = "similar") -> Recommendations:
    """Products related to one (by SKU): ``similar`` (content), ``bought_together`` or
    ``viewed_together``. Filled up with what is trending in its category when the model knows too
    few (a new product, a rare one)."""
    anchor = product_get(sku=product)
    category = anchor.category.path if anchor is not None and anchor.category else ""
    ranked = rank_similar(product, k + 10, kind)
    if ranked.model is None:
        return _bestsellers(Context(product=product, category=category), k, ranked.note)
    items = products_for(ranked, Context(product=product), k)
    if len(items) < k:
        shown = frozenset(item.product.sku for item in items)
        context = Context(product=product, category=category, exclude=shown)
        fill = _non_personal(ranked.model, context, k - len(items) + 10, "trending", "")
        items += products_for(fill, context, k - len(items))
    return Recommendations(items, kind, personalized=False, model_version=ranked.model.version_id, note=ranked.note)
