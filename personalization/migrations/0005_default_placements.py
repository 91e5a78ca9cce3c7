"""The placements of a typical shop, each with a first campaign (merchandisers change them in the admin)."""

from django.db import migrations

PLACEMENTS = [
    # key, name, kind, budget ms, limit, (campaign name, strategy, fallbacks, extra rules)
    ("home", "Home page", "home", 50, 8, ("Recommended for you", "personalized", ["trending"], {})),
    ("category", "Category page", "category", 50, 8, ("Picked for you in this category", "personalized", ["trending"], {})),
    ("product-similar", "Product page: similar", "product", 50, 8, ("Similar items", "similar", ["viewed_together", "trending"], {})),
    ("product-together", "Product page: bought together", "product", 50, 6, ("Often bought together", "bought_together", ["viewed_together", "similar"], {})),
    ("cart", "Cart", "cart", 50, 6, ("Goes with your cart", "cross_sell", ["bought_together", "trending"], {})),
    ("post-purchase", "Order confirmation", "post_purchase", 80, 6, ("You may also like", "cross_sell", ["personalized", "trending"], {"exclude_purchased": True, "exclude_purchased_days": 30})),
    ("email", "E-mail", "email", 200, 6, ("For you, by e-mail", "personalized", ["trending"], {"exclude_purchased": True, "exclude_purchased_days": 90})),
]  # fmt: skip

SNAPSHOT_FIELDS = [
    "name", "is_active", "strategy", "fallback_strategies", "limit", "priority", "starts_at", "ends_at",
    "audience_visitors", "audience_customers", "audience_countries", "audience_devices", "in_stock_only",
    "exclude_purchased", "exclude_purchased_days", "exclude_in_cart", "include_categories", "exclude_categories",
    "include_brands", "exclude_brands", "min_price", "max_price", "min_price_ratio", "max_price_ratio", "pins",
    "boosts", "max_per_category", "diversity", "exploration", "exploration_rate",
]  # fmt: skip


def create(apps, schema_editor):
    Placement = apps.get_model("personalization", "Placement")
    Campaign = apps.get_model("personalization", "Campaign")
    CampaignVersion = apps.get_model("personalization", "CampaignVersion")
    for key, name, kind, budget, limit, (campaign_name, strategy, fallbacks, rules) in PLACEMENTS:
        placement, created = Placement.objects.get_or_create(
            key=key, defaults={"name": name, "kind": kind, "latency_budget_ms": budget, "default_limit": limit}
        )
        if not created:
            continue
        campaign = Campaign.objects.create(
            placement=placement,
            name=campaign_name,
            strategy=strategy,
            fallback_strategies=fallbacks,
            version=1,
            updated_by="setup",
            **rules,
        )
        snapshot = {field: getattr(campaign, field) for field in SNAPSHOT_FIELDS}
        for field in ("min_price", "max_price", "min_price_ratio", "max_price_ratio"):
            snapshot[field] = None if snapshot[field] is None else str(snapshot[field])
        CampaignVersion.objects.create(
            campaign=campaign, version=1, snapshot=snapshot, changed_by="setup", note="The first campaign."
        )


def remove(apps, schema_editor):
    apps.get_model("personalization", "Placement").objects.filter(key__in=[p[0] for p in PLACEMENTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("personalization", "0004_campaigns_and_exposures")]

    operations = [migrations.RunPython(create, remove)]
