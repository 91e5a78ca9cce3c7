"""A campaign's audience and business rules (pure: no Django).

``campaign_choose`` picks, for a visitor, the highest-priority campaign of a placement that is
live now and whose audience matches them. ``rules_apply`` turns a ranked list of candidates into
what the slot shows: it filters (stock, categories, brands, prices absolute or relative to the
product on the page), boosts brands and categories, caps how many come from one category or
trades relevance for variety (MMR), and pins products at given positions. Every item says which
rules touched it, so the merchandiser's preview can show why it is where it is.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

CATEGORY_SEPARATOR = " > "


# --- who sees a campaign ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitorFacts:
    """What serving knows of the visitor when it picks a campaign."""

    returning: bool  # seen in an earlier session
    orders: int
    country: str  # ISO code, "" if unknown
    device: str  # "desktop", "mobile", "tablet", "bot" or ""


@dataclass(frozen=True)
class Audience:
    visitors: Literal["all", "new", "returning"] = "all"
    customers: Literal["all", "with_orders", "without_orders"] = "all"
    countries: frozenset[str] = frozenset()  # empty: any
    devices: frozenset[str] = frozenset()  # empty: any

    def matches(self, visitor: VisitorFacts) -> bool:
        if (self.visitors == "new" and visitor.returning) or (self.visitors == "returning" and not visitor.returning):
            return False
        if self.customers == "with_orders" and visitor.orders == 0:
            return False
        if self.customers == "without_orders" and visitor.orders > 0:
            return False
        if self.countries and visitor.country.upper() not in self.countries:
            return False
        return not self.devices or visitor.device in self.devices


@dataclass(frozen=True)
class CampaignChoice:
    """What ``campaign_choose`` needs of a campaign."""

    id: int
    priority: int
    audience: Audience
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)


def campaign_choose(campaigns: Sequence[CampaignChoice], visitor: VisitorFacts, now: datetime) -> CampaignChoice | None:
    """The highest-priority live campaign whose audience matches (ties: the older campaign)."""
    eligible = [c for c in campaigns if c.live(now) and c.audience.matches(visitor)]
    return min(eligible, key=lambda c: (-c.priority, c.id), default=None)


# --- what the slot shows --------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: serving builds ~100 per request, and a frozen one costs 4× to build
class Candidate:
    sku: str
    score: float
    category: str  # path, "" if none
    brand: str
    price: float
    in_stock: bool
    reason: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Boost:
    kind: Literal["brand", "category"]
    value: str
    factor: float  # multiplies the candidate's relevance (0 to 1 within the list)


@dataclass(frozen=True)
class Pin:
    sku: str
    position: int  # 1 is the first slot


@dataclass(frozen=True)
class Rules:
    in_stock_only: bool = True
    exclude_skus: frozenset[str] = frozenset()  # bought (within the window), in the cart, on the page
    include_categories: tuple[str, ...] = ()  # category paths; each includes its subtree
    exclude_categories: tuple[str, ...] = ()
    include_brands: frozenset[str] = frozenset()  # compared case-insensitively
    exclude_brands: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    min_price_ratio: float | None = None  # relative to the price of the product on the page (upsell: 1.2)
    max_price_ratio: float | None = None
    boosts: tuple[Boost, ...] = ()
    pins: tuple[Pin, ...] = ()
    max_per_category: int | None = None
    diversity: float = 0.0  # 0: by relevance only; up to 1: MMR, trading relevance for variety


@dataclass(frozen=True)
class Shown:
    candidate: Candidate
    position: int  # 1-based
    rules: tuple[str, ...]  # the rules that touched this item


def in_category(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root + CATEGORY_SEPARATOR) for root in roots)


def _refusal(candidate: Candidate, rules: Rules, context_price: float | None) -> str | None:
    """Why a candidate may not be shown at all (None: it may)."""
    if rules.in_stock_only and not candidate.in_stock:
        return "out of stock"
    if candidate.sku in rules.exclude_skus:
        return "excluded"
    if rules.include_categories and not in_category(candidate.category, rules.include_categories):
        return "outside the included categories"
    if rules.exclude_categories and in_category(candidate.category, rules.exclude_categories):
        return "in an excluded category"
    brand = candidate.brand.lower()
    if rules.include_brands and brand not in {b.lower() for b in rules.include_brands}:
        return "not an included brand"
    if brand and brand in {b.lower() for b in rules.exclude_brands}:
        return "an excluded brand"
    if rules.min_price is not None and candidate.price < rules.min_price:
        return "below the minimum price"
    if rules.max_price is not None and candidate.price > rules.max_price:
        return "above the maximum price"
    if context_price is not None and context_price > 0:
        if rules.min_price_ratio is not None and candidate.price < rules.min_price_ratio * context_price:
            return "not dear enough for an upsell"
        if rules.max_price_ratio is not None and candidate.price > rules.max_price_ratio * context_price:
            return "too dear relative to the product"
    return None


def _relevance(candidates: Sequence[Candidate], rules: Rules) -> tuple[list[float], list[tuple[str, ...]]]:
    """Each candidate's relevance in (0, 1] by its score within the list, after boosts."""
    scores = [c.score for c in candidates]
    low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
    span = high - low
    relevance, applied = [], []
    for candidate in candidates:
        value = (candidate.score - low) / span if span > 0 else 1.0
        value = 0.05 + 0.95 * value  # a boost can lift even the last candidate
        notes: list[str] = []
        for boost in rules.boosts:
            hit = (
                candidate.brand.lower() == boost.value.lower()
                if boost.kind == "brand"
                else in_category(candidate.category, [boost.value])
            )
            if hit:
                value *= boost.factor
                notes.append(f"boosted ×{boost.factor:g} ({boost.kind} {boost.value})")
        relevance.append(value)
        applied.append(tuple(notes))
    return relevance, applied


def _similarity(a: Candidate, b: Candidate) -> float:
    """How alike two items are for diversity: the same category 1, the same brand 0.5."""
    if a.category and a.category == b.category:
        return 1.0
    return 0.5 if a.brand and a.brand.lower() == b.brand.lower() else 0.0


def rules_apply(
    candidates: Sequence[Candidate],
    rules: Rules,
    *,
    k: int,
    context_price: float | None = None,
    pinned: Mapping[str, Candidate] | None = None,
) -> list[Shown]:
    """What the slot shows, best first. ``candidates`` are ranked, best first; ``pinned`` has the
    pinned products (which pass the same filters: a pinned product out of stock is not shown)."""
    pinned = pinned or {}
    pins = sorted((p for p in rules.pins if p.sku in pinned and 1 <= p.position <= k), key=lambda p: p.position)
    # A merchandiser's pin overrides the category, brand and price rules, not stock or exclusions.
    pins = [p for p in pins if p.sku not in rules.exclude_skus and (pinned[p.sku].in_stock or not rules.in_stock_only)]
    pinned_skus = {p.sku for p in pins}
    allowed = [c for c in candidates if c.sku not in pinned_skus and _refusal(c, rules, context_price) is None]
    allowed = list({c.sku: c for c in reversed(allowed)}.values())[::-1]  # each product once, at its best
    relevance, notes = _relevance(allowed, rules)
    free = k - len(pins)
    chosen: list[tuple[Candidate, tuple[str, ...]]] = []
    per_category: dict[str, int] = {}
    remaining = sorted(range(len(allowed)), key=lambda i: -relevance[i])  # stable: ties keep the ranking
    if not rules.max_per_category and not rules.diversity:  # the loop below would take them in this order
        chosen, remaining = [(allowed[index], notes[index]) for index in remaining[: max(free, 0)]], []
    while remaining and len(chosen) < free:
        best, best_value, most_relevant = None, float("-inf"), None
        for index in remaining:  # in order of relevance
            candidate = allowed[index]
            if rules.max_per_category and per_category.get(candidate.category, 0) >= rules.max_per_category:
                continue
            most_relevant = index if most_relevant is None else most_relevant
            value = relevance[index]
            if rules.diversity and chosen:
                value = (1 - rules.diversity) * value - rules.diversity * max(
                    _similarity(candidate, other) for other, _ in chosen
                )
            if value > best_value:
                best, best_value = index, value
        if best is None:
            break  # every remaining candidate is capped
        remaining.remove(best)
        candidate = allowed[best]
        per_category[candidate.category] = per_category.get(candidate.category, 0) + 1
        extra = ("moved up for diversity",) if best != most_relevant else ()
        chosen.append((candidate, notes[best] + extra))
    shown: list[tuple[Candidate, tuple[str, ...]]] = list(chosen)
    for pin in pins:
        position = min(pin.position, len(shown) + 1)
        shown.insert(position - 1, (pinned[pin.sku], (f"pinned at {pin.position}",)))
    return [Shown(candidate, position, applied) for position, (candidate, applied) in enumerate(shown, start=1)]
