"""What a request asks of serving, and what it answers."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
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
class Situation:
    """What the strategies know of the request."""

    request: ServeRequest
    visit: Visit
    context_product: Product | None
    cart: list[str]
    excluded: frozenset[str]
