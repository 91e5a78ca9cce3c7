"""The placements and their campaigns, as serving needs them: immutable specs, cached in each
process and reloaded within a second of a change (``campaigns_changed``)."""

import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core.cache import cache

from personalization.campaign_rules import Audience, Boost, CampaignChoice, Pin, Rules
from personalization.models import Campaign, Placement, Strategy

CAMPAIGNS_VERSION_KEY = "personalization:campaigns-version"
UPSELL_RATIO = 1.2  # an upsell is at least this much dearer than the product on the page, unless the campaign says


class UnknownPlacement(ValueError):
    pass


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


def placement_spec_held(key: str) -> PlacementSpec | None:
    """The placement as this process last read it, without a check (None: never read here)."""
    with _placements_lock:
        spec: PlacementSpec | None = _placements["specs"].get(key)
    return spec


def forget_placements() -> None:
    with _placements_lock:
        _placements.update(version=None, checked=0.0, specs={})
