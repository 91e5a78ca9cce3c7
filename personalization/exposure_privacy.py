"""The exposure log's personal data (who was shown what), in the personal-data registry.

Erasure anonymises rather than deletes: the lists shown and what came of them stay in the
campaigns' figures, with no one's ids on them."""

from typing import Any

from django.db.models import Q

from consent.subjects import Identities
from personalization.models import Exposure, ExposureOutcome


def _exposures(identities: Identities) -> Any:
    return Exposure.objects.filter(Q(user_id__in=identities.user_ids) | Q(anonymous_id__in=identities.anonymous_ids))


def subject_export(identities: Identities) -> dict[str, Any]:
    exposures = _exposures(identities).order_by("shown_at").prefetch_related("outcomes")
    return {
        "recommendations_shown": [
            {
                "rec_id": str(e.rec_id),
                "placement": e.placement,
                "strategy": e.strategy,
                "personalized": e.personalized,
                "shown_at": e.shown_at.isoformat(),
                "items": e.items,
                "outcomes": [
                    {"kind": o.kind, "sku": o.sku, "at": o.at.isoformat(), "revenue": str(o.revenue)}
                    for o in e.outcomes.all()
                ],
            }
            for e in exposures
        ]
    }


def subject_erase(identities: Identities) -> dict[str, int]:
    exposures = _exposures(identities)
    outcomes = ExposureOutcome.objects.filter(exposure__in=exposures).count()
    anonymised = exposures.update(user_id="", anonymous_id="")
    return {"exposures anonymised": anonymised, "their outcomes kept without ids": outcomes}
