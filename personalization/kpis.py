"""Reads of the campaigns' performance: what was served, seen, clicked, added and ordered.

Counts come from the exposure log (``Exposure``) and what came of it (``ExposureOutcome``), in a
few grouped queries whatever the period. Rates are ``None`` where their denominator is zero.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from personalization.models import Campaign, Exposure, ExposureOutcome


@dataclass
class Kpi:
    placement: str
    campaign_id: int | None
    campaign: str
    served: int = 0
    impressions: int = 0
    clicks: int = 0
    adds: int = 0
    orders: int = 0
    revenue: Decimal = field(default_factory=lambda: Decimal("0"))

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def ctr(self) -> float | None:
        """Clicks per impression (a list seen, half visible for a second)."""
        return self._rate(self.clicks, self.impressions)

    @property
    def add_rate(self) -> float | None:
        """Adds to cart per click."""
        return self._rate(self.adds, self.clicks)

    @property
    def order_rate(self) -> float | None:
        """Orders per click."""
        return self._rate(self.orders, self.clicks)


OUTCOME_FIELDS = {
    ExposureOutcome.Kind.IMPRESSION: "impressions",
    ExposureOutcome.Kind.CLICK: "clicks",
    ExposureOutcome.Kind.ADD: "adds",
    ExposureOutcome.Kind.ORDER: "orders",
}


def campaign_kpis(*, since: datetime, until: datetime) -> list[Kpi]:
    """Per placement and campaign, over [since, until): answers served (by when they were served)
    and outcomes (by when they happened)."""
    names = dict(Campaign.objects.values_list("pk", "name"))
    rows: dict[tuple[str, int | None], Kpi] = {}

    def row(placement: str, campaign_id: int | None) -> Kpi:
        key = (placement, campaign_id)
        if key not in rows:
            rows[key] = Kpi(placement, campaign_id, names.get(campaign_id, "—") if campaign_id else "—")
        return rows[key]

    served = (
        Exposure.objects.filter(shown_at__gte=since, shown_at__lt=until)
        .values_list("placement", "campaign_id")
        .annotate(n=Count("rec_id"))
    )
    for placement, campaign_id, n in served:
        row(placement, campaign_id).served = n
    outcomes = (
        ExposureOutcome.objects.filter(at__gte=since, at__lt=until)
        .values_list("exposure__placement", "exposure__campaign_id", "kind")
        .annotate(n=Count("message_id", distinct=True), revenue=Sum("revenue"))
    )
    for placement, campaign_id, kind, n, revenue in outcomes:
        kpi = row(placement, campaign_id)
        setattr(kpi, OUTCOME_FIELDS[kind], n)
        if kind == ExposureOutcome.Kind.ORDER:
            kpi.revenue = revenue or Decimal("0")
    return sorted(rows.values(), key=lambda k: (k.placement, k.campaign))


def kpi_days(*, since: datetime, until: datetime) -> list[tuple[date, Kpi]]:
    """All campaigns together, per day of [since, until)."""
    days: dict[date, Kpi] = defaultdict(lambda: Kpi("", None, ""))
    served = (
        Exposure.objects.filter(shown_at__gte=since, shown_at__lt=until)
        .annotate(day=TruncDate("shown_at"))
        .values_list("day")
        .annotate(n=Count("rec_id"))
    )
    for day, n in served:
        days[day].served = n
    outcomes = (
        ExposureOutcome.objects.filter(at__gte=since, at__lt=until)
        .annotate(day=TruncDate("at"))
        .values_list("day", "kind")
        .annotate(n=Count("message_id", distinct=True), revenue=Sum("revenue"))
    )
    for day, kind, n, revenue in outcomes:
        setattr(days[day], OUTCOME_FIELDS[kind], n)
        if kind == ExposureOutcome.Kind.ORDER:
            days[day].revenue = revenue or Decimal("0")
    return sorted(days.items())
