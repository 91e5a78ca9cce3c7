"""What a request asks of serving, and what it answers."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config import sql
from consent.subjects import Subject
from personalization.catalog_snapshot import CARD_FIELDS, ProductCard, catalog_snapshot
from personalization.model_store import active_model
from personalization.models import Product
from personalization.recommendations import Visit
from personalization.serving.specs import CampaignSpec


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
    deadline: float | None = None  # time.monotonic() past which nobody waits for the answer


_CARDS_SQL = (
    "SELECT p.id, p.sku, p.name, p.url, p.image_url, p.price, p.currency, c.path "
    "FROM personalization_product p LEFT JOIN personalization_category c ON c.id = p.category_id "
    "WHERE (p.is_active OR NOT %s) AND (p.in_stock OR NOT %s) AND "
)


def _read_cards(
    skus: Sequence[str], pks: Sequence[int], in_stock_only: bool, active_only: bool = True
) -> dict[str, ProductCard]:
    if sql.postgres():
        where = "p.sku = ANY(%s)" if skus else "p.id = ANY(%s)"
        rows: Any = sql.fetch_all(_CARDS_SQL + where, (active_only, in_stock_only, list(skus) if skus else list(pks)))
    else:
        products = Product.objects.filter(**({"sku__in": skus} if skus else {"pk__in": pks}))
        if active_only:
            products = products.filter(is_active=True)
        if in_stock_only:
            products = products.filter(in_stock=True)
        rows = products.order_by().values_list(*CARD_FIELDS)
    return {
        sku: ProductCard(pk, sku, name, url, image_url, price, currency, category or "")
        for pk, sku, name, url, image_url, price, currency, category in rows
    }


def product_cards(
    *, skus: Sequence[str] = (), pks: Sequence[int] = (), in_stock_only: bool = False, active_only: bool = True
) -> dict[str, ProductCard]:
    """``{sku: card}`` of the active products among ``skus`` or ``pks`` (in stock only, if asked;
    inactive ones too, if not ``active_only``), as this process's catalog snapshot has them (a
    second old at most), and read from the database for those it does not know (added since the
    model's training); no ordering."""
    if not skus and not pks:
        return {}
    model = active_model()
    if model is None:
        return _read_cards(skus, pks, in_stock_only, active_only)
    snapshot = catalog_snapshot(model)
    found: dict[str, ProductCard] = {}
    unknown: list[Any] = []
    index: dict[Any, int] = model.row_of_sku if skus else model.row_of_product
    for key in skus or pks:
        row = index.get(key)
        card = snapshot.cards[row] if row is not None else None
        if card is None:
            unknown.append(key)
        elif (snapshot.active[row] or not active_only) and (snapshot.in_stock[row] or not in_stock_only):
            found[card.sku] = card
    if unknown:
        found.update(_read_cards(unknown if skus else (), () if skus else unknown, in_stock_only, active_only))
    return found


def context_card(sku: str) -> ProductCard | None:
    """The card of the product on the page (its price and category), active or not, as
    ``product_cards`` reads it (the catalog snapshot: no query for a product the model knows)."""
    return product_cards(skus=[sku], active_only=False).get(sku)


@dataclass(frozen=True)
class ServedItem:
    product: ProductCard
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
class Situation:
    """What the strategies know of the request."""

    request: ServeRequest
    visit: Visit
    context_product: ProductCard | None
    cart: list[str]
    excluded: frozenset[str]
