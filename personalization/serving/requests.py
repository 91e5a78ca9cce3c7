"""What a request asks of serving, and what it answers."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from consent.subjects import Subject
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


@dataclass(frozen=True)
class ProductCard:
    """What a slot shows of a product (read as a few columns, not a model instance)."""

    pk: int
    sku: str
    name: str
    url: str
    image_url: str
    price: Decimal
    currency: str
    category_path: str


CARD_FIELDS = ("pk", "sku", "name", "url", "image_url", "price", "currency", "category__path")


def product_cards(**filters: Any) -> dict[str, ProductCard]:
    """``{sku: card}`` of the products matching ``filters`` (one query, no ordering)."""
    rows = Product.objects.filter(**filters).order_by().values_list(*CARD_FIELDS)
    return {
        sku: ProductCard(pk, sku, name, url, image_url, price, currency, category or "")
        for pk, sku, name, url, image_url, price, currency, category in rows
    }


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
    context_product: Product | None
    cart: list[str]
    excluded: frozenset[str]
