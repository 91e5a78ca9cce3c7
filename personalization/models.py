"""The product catalog: a category tree and the products in it."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

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
