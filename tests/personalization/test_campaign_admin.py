"""The merchandiser's campaigns in the admin: edit (versioned), roll back, preview, performance."""

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from personalization.models import Campaign, Exposure, ExposureOutcome

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def form_data(campaign: Campaign, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "placement": campaign.placement_id, "name": campaign.name, "is_active": "on", "priority": campaign.priority,
        "strategy": campaign.strategy, "fallback_strategies": '["trending"]', "limit": "",
        "audience_visitors": "all", "audience_customers": "all", "audience_countries": "[]", "audience_devices": "[]",
        "in_stock_only": "on", "exclude_in_cart": "on", "include_categories": "[]", "exclude_categories": "[]",
        "include_brands": "[]", "exclude_brands": "[]", "pins": "[]", "boosts": "[]", "diversity": "0",
        "exploration": "none", "exploration_rate": "0.1",
        "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0", "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    data.update(changes)
    return data


def test_pages_render(admin_client: Client) -> None:
    campaign = Campaign.objects.get(placement__key="home")
    for url in (
        "/admin/personalization/placement/",
        f"/admin/personalization/placement/{campaign.placement_id}/change/",
        "/admin/personalization/campaign/",
        f"/admin/personalization/campaign/{campaign.pk}/change/",
        f"/admin/personalization/campaign/{campaign.pk}/preview/",
        "/admin/personalization/campaign/performance/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_an_edit_is_a_new_version_by_its_author_and_bad_values_name_their_field(admin_client: Client) -> None:
    campaign = Campaign.objects.get(placement__key="home")
    url = f"/admin/personalization/campaign/{campaign.pk}/change/"
    response = admin_client.post(url, form_data(campaign, priority="7", pins='[{"sku": "K1", "position": 2}]'))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    campaign.refresh_from_db()
    assert (campaign.version, campaign.priority, campaign.updated_by) == (2, 7, "admin")
    assert campaign.versions.get(version=2).snapshot["pins"] == [{"sku": "K1", "position": 2}]
    bad = {
        "fallback_strategies": '["magic"]',
        "audience_countries": '["France"]',
        "audience_devices": '["fridge"]',
        "pins": '[{"sku": "K1"}]',
        "boosts": '[{"kind": "colour", "value": "red", "factor": 2}]',
        "diversity": "1.5",
    }
    for field, value in bad.items():
        response = admin_client.post(url, form_data(campaign, **{field: value}))
        assert response.status_code == 200, field
        errors = response.context["adminform"].form.errors
        assert field in errors or "__all__" in errors, (field, errors)
    campaign.refresh_from_db()
    assert campaign.version == 2  # nothing refused was stored


def test_rolling_back_from_the_versions_list(admin_client: Client) -> None:
    campaign = Campaign.objects.get(placement__key="home")
    admin_client.post(
        f"/admin/personalization/campaign/{campaign.pk}/change/", form_data(campaign, strategy="trending")
    )
    page = admin_client.get(f"/admin/personalization/campaign/{campaign.pk}/change/").content.decode()
    assert "Roll back to this version" in page
    assert admin_client.get(f"/admin/personalization/campaign/{campaign.pk}/rollback/1/").status_code == 403
    response = admin_client.post(f"/admin/personalization/campaign/{campaign.pk}/rollback/1/", follow=True)
    assert "Rolled back to version 1: this is version 3." in response.content.decode()
    campaign.refresh_from_db()
    assert (campaign.strategy, campaign.version) == ("personalized", 3)
    missing = admin_client.post(f"/admin/personalization/campaign/{campaign.pk}/rollback/9/", follow=True)
    assert "has no version 9" in missing.content.decode()


def test_performance_counts_served_seen_clicked_added_and_ordered(admin_client: Client) -> None:
    campaign = Campaign.objects.get(placement__key="home")
    now = timezone.now()
    for n in range(4):
        exposure = Exposure.objects.create(
            rec_id=uuid.uuid4(), placement="home", campaign=campaign, strategy="personalized", personalized=True,
            anonymous_id=f"v{n}", items=[{"sku": "A", "position": 1}], shown_at=now - timedelta(hours=1),
        )  # fmt: skip
        if n < 2:
            ExposureOutcome.objects.create(exposure=exposure, kind="impression", at=now, message_id=f"i{n}")
        if n == 0:
            for kind, revenue in (("click", 0), ("add", 0), ("order", 12)):
                ExposureOutcome.objects.create(
                    exposure=exposure, kind=kind, sku="A", at=now, message_id=f"{kind}{n}", revenue=Decimal(revenue)
                )
    page = admin_client.get("/admin/personalization/campaign/performance/?days=7")
    (row,) = page.context["rows"]
    assert (row.served, row.impressions, row.clicks, row.adds, row.orders) == (4, 2, 1, 1, 1)
    assert (row.ctr, row.add_rate, row.revenue) == (0.5, 1.0, Decimal("12.00"))
    assert "<svg" in page.content.decode() and "Recommended for you" in page.content.decode()


def test_every_setting_the_admin_edits_is_kept_in_each_version() -> None:
    """A field a merchandiser can change is versioned (so a rollback restores it); only the
    campaign's placement, compared on its own, is edited and left out of the versions."""
    from django.contrib import admin
    from django.contrib.admin.utils import flatten_fieldsets

    from personalization.services.campaigns import NOT_VERSIONED, SNAPSHOT_FIELDS

    campaign_admin = admin.site._registry[Campaign]
    edited = set(flatten_fieldsets(campaign_admin.fieldsets or ())) - set(campaign_admin.readonly_fields)
    assert edited - set(SNAPSHOT_FIELDS) == {"placement"}
    assert {field.name for field in Campaign._meta.concrete_fields} == set(SNAPSHOT_FIELDS) | NOT_VERSIONED
