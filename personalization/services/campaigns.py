"""Writes of placements and campaigns: every change of a campaign is a new version, kept whole,
so a merchandiser can see who changed what and roll back."""

from decimal import Decimal
from typing import Any

from django.db import models, transaction

from personalization.models import Campaign, CampaignVersion, Placement
from personalization.serving import campaigns_changed, forget_placements

# What a version does not hold: the campaign's identity, its placement (compared on its own: a
# campaign does not move between placements by a rollback) and the bookkeeping of versions.
NOT_VERSIONED = {"id", "placement", "version", "created_at", "updated_at", "updated_by"}
# Every other field is a setting a version keeps, so a field added to the model is versioned unless
# it is named above (tests/personalization/test_campaigns.py checks the admin edits no other).
SNAPSHOT_FIELDS = [field.name for field in Campaign._meta.concrete_fields if field.name not in NOT_VERSIONED]
DECIMAL_FIELDS = {
    field.name for field in Campaign._meta.concrete_fields if isinstance(field, models.DecimalField)
} & set(SNAPSHOT_FIELDS)
DATETIME_FIELDS = {
    field.name for field in Campaign._meta.concrete_fields if isinstance(field, models.DateTimeField)
} & set(SNAPSHOT_FIELDS)


class CampaignError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def campaign_snapshot(campaign: Campaign) -> dict[str, Any]:
    """The campaign's settings as JSON values."""
    snapshot: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = getattr(campaign, name)
        if name in DECIMAL_FIELDS and value is not None:
            value = str(value)
        elif name in DATETIME_FIELDS and value is not None:
            value = value.isoformat()
        snapshot[name] = value
    return snapshot


def _changed() -> None:
    forget_placements()  # this process at once; the others within a second
    transaction.on_commit(campaigns_changed)


@transaction.atomic
def campaign_save(*, campaign: Campaign, by: str, note: str = "") -> Campaign:
    """Save a new or changed campaign as its next version (an unchanged one stays as it is)."""
    if campaign.pk is not None:
        stored = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign_snapshot(stored) == campaign_snapshot(campaign) and stored.placement_id == campaign.placement_id:
            return stored
        campaign.version = stored.version + 1
    else:
        campaign.version = 1
    campaign.updated_by = by
    campaign.full_clean()
    campaign.save()
    CampaignVersion.objects.create(
        campaign=campaign, version=campaign.version, snapshot=campaign_snapshot(campaign), changed_by=by, note=note
    )
    _changed()
    return campaign


@transaction.atomic
def campaign_rollback(*, campaign: Campaign, version: int, by: str) -> Campaign:
    """Make the campaign what it was in an earlier version (recorded as a new version)."""
    old = CampaignVersion.objects.filter(campaign=campaign, version=version).first()
    if old is None:
        raise CampaignError(f"Campaign {campaign.pk} has no version {version}.")
    restored = Campaign.objects.select_for_update().get(pk=campaign.pk)
    for name, value in old.snapshot.items():
        if name in DECIMAL_FIELDS and value is not None:
            value = Decimal(value)
        setattr(restored, name, value)
    return campaign_save(campaign=restored, by=by, note=f"Rolled back to version {version}.")


def placement_saved() -> None:
    """After a placement changed (its budget, its limit, whether it is active)."""
    _changed()


def placement_create(*, key: str, name: str, kind: str = Placement.Kind.OTHER, **fields: Any) -> Placement:
    placement = Placement(key=key, name=name, kind=kind, **fields)
    placement.full_clean()
    placement.save()
    _changed()
    return placement
