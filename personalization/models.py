"""The product catalog: a category tree and the products in it."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from personalization.catalog_input import check_link

validate_currency = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code in capitals, e.g. GBP.")


def validate_link(value: str) -> None:
    try:
        check_link(value)
    except ValueError as exc:
        raise ValidationError(f"URL {exc}.") from exc


class Category(models.Model):
    """A node of the category tree.

    ``path`` is the full name from the root (``"Home > Kitchen > Mugs"``), the form Google
    product categories and most shop exports use; it is the category's natural key and is kept
    in step with ``name`` and ``parent`` by ``personalization.services``.
    """

    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    path = models.CharField(max_length=500, unique=True, editable=False)
    slug = models.CharField(
        max_length=500, unique=True, editable=False, help_text="The path in URL form: home-kitchen/mugs."
    )
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="category_name_unique_in_parent"),
            models.CheckConstraint(
                condition=~Q(name__contains=">"),
                name="category_name_without_separator",
                violation_error_message="A category name cannot contain '>' (it separates the levels of a path).",
            ),
        ]

    def __str__(self) -> str:
        return self.path


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True, help_text="The shop's product id.")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    url = models.CharField("URL", max_length=1000, blank=True, validators=[validate_link])
    image_url = models.CharField("image URL", max_length=1000, blank=True, validators=[validate_link])
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default=settings.PZ_DEFAULT_CURRENCY, validators=[validate_currency])
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    brand = models.CharField(max_length=100, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True, help_text="A list of short labels.")
    attributes = models.JSONField(default=dict, blank=True, help_text="Free-form attributes, e.g. colour, size.")
    stock = models.IntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)], help_text="Units in stock; empty when not tracked."
    )
    in_stock = models.BooleanField(default=True)
    is_active = models.BooleanField("active", default=True, help_text="Inactive products are never recommended.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["sku"]
        indexes = [models.Index(fields=["is_active", "in_stock", "category"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=0),
                name="product_price_not_negative",
                violation_error_message="The price cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0),
                name="product_stock_not_negative",
                violation_error_message="The stock cannot be negative; leave it empty when it is not tracked.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class ModelVersion(models.Model):
    """One training of the recommenders: its parameters, data window, hold-out metrics, timings
    and where its artifacts are. At most one version is active: the one serving answers from."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        ACTIVE = "active", "Active (serving)"
        READY = "ready", "Ready (not serving)"
        REJECTED = "rejected", "Rejected (worse than the active version)"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Artifacts removed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING, db_index=True)
    trigger = models.CharField(max_length=100, blank=True, help_text="What started it: schedule, command, admin.")
    params = models.JSONField(default=dict, blank=True, help_text="Every hyper-parameter, blend weights included.")
    data_since = models.DateTimeField(null=True, blank=True, help_text="The oldest interaction used.")
    data_until = models.DateTimeField(null=True, blank=True, help_text="Interactions up to this moment were used.")
    holdout_since = models.DateTimeField(null=True, blank=True, help_text="The hold-out window starts here.")
    counts = models.JSONField(default=dict, blank=True, help_text="People, items, interactions, consent exclusions.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Hold-out metrics per recommender and protocol.")
    score = models.FloatField(null=True, blank=True, help_text="The hold-out NDCG@10 activation compares.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per part of the training.")
    artifact_path = models.CharField(max_length=500, blank=True)
    revision = models.PositiveIntegerField(default=0, help_text="Bumped when the artifacts change (an erasure).")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="model_version_one_active")
        ]

    def __str__(self) -> str:
        return f"Model version {self.pk} ({self.get_status_display()})"


class TunedParameters(models.Model):
    """Hyper-parameters found by ``evaluate --save`` on a validation window; the newest are used by
    every training after them."""

    params = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True, help_text="Validation and test metrics of the run.")
    data_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "tuned parameters"

    def __str__(self) -> str:
        return f"Tuned parameters of {self.created_at:%Y-%m-%d %H:%M}"


# --- placements and campaigns ---------------------------------------------------------------------


class Placement(models.Model):
    """A slot of the shop (home page, product page, cart, …) that shows recommendations; the
    storefront names it by ``key`` (``<div data-pz-placement="home">``)."""

    class Kind(models.TextChoices):
        HOME = "home", "Home page"
        CATEGORY = "category", "Category page"
        PRODUCT = "product", "Product page"
        CART = "cart", "Cart"
        POST_PURCHASE = "post_purchase", "Order confirmation"
        EMAIL = "email", "E-mail"
        OTHER = "other", "Other"

    key = models.SlugField(max_length=64, unique=True, help_text="What the storefront asks for: placement=<key>.")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OTHER)
    latency_budget_ms = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(5)],
        help_text="Past this, the answer is the precomputed non-personalized list (and the fallback is counted).",
    )
    default_limit = models.PositiveSmallIntegerField(default=8, validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class Strategy(models.TextChoices):
    PERSONALIZED = "personalized", "Personalized (the blend)"
    SIMILAR = "similar", "Similar items (to the product on the page)"
    BOUGHT_TOGETHER = "bought_together", "Bought together (with the product, or the cart)"
    VIEWED_TOGETHER = "viewed_together", "Viewed together"
    TRENDING = "trending", "Trending"
    POPULAR = "popular", "Most popular"
    RECENTLY_VIEWED = "recently_viewed", "Recently viewed"
    BUY_AGAIN = "buy_again", "Buy again"
    UPSELL = "upsell", "Upsell (like the product, dearer)"
    CROSS_SELL = "cross_sell", "Cross-sell (goes with the product or cart, another category)"


class Campaign(models.Model):
    """What a placement shows to whom: a strategy with its fallbacks, an audience, a schedule, a
    priority (the highest-priority live campaign whose audience matches wins) and business rules.
    Every change is kept as a ``CampaignVersion`` and can be rolled back."""

    class Visitors(models.TextChoices):
        ALL = "all", "All visitors"
        NEW = "new", "New visitors"
        RETURNING = "returning", "Returning visitors"

    class Customers(models.TextChoices):
        ALL = "all", "Everyone"
        WITH_ORDERS = "with_orders", "Customers with orders"
        WITHOUT_ORDERS = "without_orders", "Visitors without orders"

    class Exploration(models.TextChoices):
        NONE = "none", "None"
        EPSILON_GREEDY = "epsilon_greedy", "Epsilon-greedy"
        THOMPSON = "thompson", "Thompson sampling"

    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PERSONALIZED)
    fallback_strategies = models.JSONField(
        default=list, blank=True, help_text='Tried in order when fewer items come back, e.g. ["similar", "trending"].'
    )
    limit = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Items shown; empty: the placement's."
    )
    priority = models.IntegerField(
        default=0, help_text="The highest-priority live campaign whose audience matches wins."
    )
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    # audience
    audience_visitors = models.CharField(max_length=16, choices=Visitors.choices, default=Visitors.ALL)
    audience_customers = models.CharField(max_length=16, choices=Customers.choices, default=Customers.ALL)
    audience_countries = models.JSONField(
        default=list, blank=True, help_text='ISO codes, e.g. ["GB", "IE"]; empty: any.'
    )
    audience_devices = models.JSONField(
        default=list, blank=True, help_text='"desktop", "mobile", "tablet"; empty: any.'
    )
    # business rules
    in_stock_only = models.BooleanField(default=True)
    exclude_purchased = models.BooleanField(default=False, help_text="Leave out what the visitor bought.")
    exclude_purchased_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only what they bought in the last N days; empty: ever."
    )
    exclude_in_cart = models.BooleanField(default=True)
    include_categories = models.JSONField(default=list, blank=True, help_text="Category paths (with their subtrees).")
    exclude_categories = models.JSONField(default=list, blank=True)
    include_brands = models.JSONField(default=list, blank=True)
    exclude_brands = models.JSONField(default=list, blank=True)
    min_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    max_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    min_price_ratio = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="× the price of the product on the page (upsell: 1.2).",
    )
    max_price_ratio = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    pins = models.JSONField(default=list, blank=True, help_text='[{"sku": "85123A", "position": 1}]')
    boosts = models.JSONField(
        default=list, blank=True, help_text='[{"kind": "brand" or "category", "value": "…", "factor": 1.5}]'
    )
    max_per_category = models.PositiveSmallIntegerField(null=True, blank=True)
    diversity = models.FloatField(
        default=0.0, help_text="0: by relevance only; up to 1: trade relevance for variety (MMR)."
    )
    # exploration
    exploration = models.CharField(max_length=16, choices=Exploration.choices, default=Exploration.NONE)
    exploration_rate = models.FloatField(default=0.1, help_text="Epsilon, for epsilon-greedy.")
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["placement", "-priority", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(diversity__gte=0) & Q(diversity__lte=1), name="campaign_diversity_between_0_and_1"
            ),
            models.CheckConstraint(
                condition=Q(exploration_rate__gte=0) & Q(exploration_rate__lte=1), name="campaign_rate_between_0_and_1"
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(starts_at__lt=F("ends_at")),
                name="campaign_starts_before_it_ends",
                violation_error_message="The campaign must start before it ends.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.placement.key})"


class CampaignVersion(models.Model):
    """A campaign as it was after a change: who changed it, when, and everything it was."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changed_by = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["campaign", "-version"]
        constraints = [models.UniqueConstraint(fields=["campaign", "version"], name="campaign_version_once")]

    def __str__(self) -> str:
        return f"{self.campaign} v{self.version}"


# --- what was shown, and what came of it ---------------------------------------------------------------


class Exposure(models.Model):
    """One answer of the recommendation API: which list a visitor was given, by which campaign
    and strategy, with each item's position (and, when exploring, the probability it had there).

    Logged through the event stream (the API never waits for this insert); the impressions,
    clicks, adds to cart and orders that follow are its ``ExposureOutcome`` rows. The experiments
    app reads the same log."""

    rec_id = models.UUIDField(primary_key=True)
    placement = models.CharField(max_length=64, db_index=True)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="exposures")
    campaign_version = models.PositiveIntegerField(null=True, blank=True)
    strategy = models.CharField(max_length=20)
    personalized = models.BooleanField()
    note = models.CharField(max_length=200, blank=True, help_text="Why the list is not what was asked for.")
    model_version = models.PositiveIntegerField(null=True, blank=True)
    user_id = models.CharField(max_length=128, blank=True, db_index=True)
    anonymous_id = models.CharField(max_length=128, blank=True, db_index=True)
    items = models.JSONField(default=list, help_text='[{"sku", "position", "propensity"}]')
    shown_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-shown_at"]
        indexes = [models.Index(fields=["campaign", "shown_at"])]

    def __str__(self) -> str:
        return f"{self.placement} {self.rec_id}"


class ExposureOutcome(models.Model):
    """What came of an exposure: an impression of the list, a click on one of its items, and the
    add to cart and order of a clicked item that followed within the attribution window."""

    class Kind(models.TextChoices):
        IMPRESSION = "impression", "Impression"
        CLICK = "click", "Click"
        ADD = "add", "Add to cart"
        ORDER = "order", "Order"

    exposure = models.ForeignKey(Exposure, on_delete=models.CASCADE, related_name="outcomes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sku = models.CharField(max_length=64, blank=True)
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    quantity = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    at = models.DateTimeField(db_index=True)
    message_id = models.CharField(max_length=100, help_text="The event it came from (each counts once).")

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["exposure", "kind", "sku", "message_id"], name="exposure_outcome_once")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sku}"
