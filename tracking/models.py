"""Where events come from (sources), who sends them (customers) and what they bought (orders).

An ``Order`` is the stored form of a Segment ``Order Completed`` event (or ``Order Cancelled``):
the history loaded from a file and the orders live events report end up in these same tables
with the same meaning, told apart only by ``origin``.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Source(models.Model):
    """One place events and catalog updates come from: a web shop, an app, a shop's server.

    The write key is public (a browser sees it) and can only send events; the secret key is for
    the shop's servers and is stored only as a SHA-256 digest.
    """

    name = models.CharField(max_length=100, unique=True)
    write_key = models.CharField(max_length=64, unique=True, help_text="Public: may only send events.")
    secret_key_digest = models.CharField(max_length=64, unique=True, editable=False)
    secret_key_prefix = models.CharField(
        max_length=16, editable=False, help_text="The first characters of the secret key, to recognise it."
    )
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text='Browser origins that may call with the write key, e.g. ["https://shop.example.com"].',
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """A known person: someone the shop identifies with its own ``userId``."""

    user_id = models.CharField(max_length=128, unique=True, help_text="The shop's own customer id.")
    email = models.EmailField(blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code, blank if unknown.")
    traits = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"Customer {self.user_id}"


class Order(models.Model):
    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class Origin(models.TextChoices):
        IMPORT = "import", "Imported history"
        SHOP = "shop", "Demo shop checkout"
        EVENT = "event", "Tracked event"

    order_id = models.CharField(max_length=100, unique=True, help_text="The shop's order id (Segment order_id).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    anonymous_id = models.CharField(max_length=128, blank=True, db_index=True)
    placed_at = models.DateTimeField(db_index=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, help_text="Sum of the lines.")
    currency = models.CharField(max_length=3, default=settings.PZ_DEFAULT_CURRENCY)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    message_id = models.CharField(
        max_length=100, blank=True, help_text="The messageId of the event that reported this order, if any."
    )
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["customer", "placed_at"])]
        constraints = [models.CheckConstraint(condition=Q(revenue__gte=0), name="order_revenue_not_negative")]

    def __str__(self) -> str:
        return f"Order {self.order_id}"


class OrderLine(models.Model):
    """One line of an order, in the order it was entered (a real basket sequence)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    product = models.ForeignKey(
        "personalization.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="order_lines"
    )
    sku = models.CharField(max_length=64, help_text="Kept even if the product is later removed.")
    name = models.CharField(max_length=255, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["order", "position"]
        constraints = [
            models.UniqueConstraint(fields=["order", "position"], name="order_line_position_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="order_line_price_not_negative"),
        ]
        indexes = [models.Index(fields=["product", "order"])]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku}"


class Event(models.Model):
    """One stored event (Segment spec), deduplicated on (source, message_id)."""

    id = models.BigAutoField(primary_key=True)
    # Not indexed alone: the unique (source, message_id) index serves lookups by source.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="events", db_index=False)
    message_id = models.CharField(max_length=100)
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=200, blank=True, help_text="The name of a track call.")
    name = models.CharField(max_length=200, blank=True, help_text="The name of a page or screen.")
    user_id = models.CharField(max_length=128, blank=True)
    anonymous_id = models.CharField(max_length=128, blank=True)
    group_id = models.CharField(max_length=128, blank=True)
    previous_id = models.CharField(max_length=128, blank=True)
    session_id = models.CharField(max_length=32, blank=True)
    timestamp = models.DateTimeField(help_text="When it happened, corrected for the client's clock.")
    received_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    original_timestamp = models.DateTimeField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "message_id"], name="event_message_once")]
        # Every index costs each insert (the consumer's hot path): only those a query uses.
        # user_id: the subject's events (export, erasure); most events are anonymous, so only the
        # identified ones are indexed. anonymous_id: the same. timestamp: retention purge, training
        # reads (``product_events``: most events of a period are product events, so a scan of the
        # period serves them as well as an index on the event name would).
        indexes = [
            models.Index(fields=["user_id", "timestamp"], name="event_user_time", condition=~Q(user_id="")),
            models.Index(fields=["anonymous_id", "timestamp"], name="tracking_ev_anonymo_d4a845_idx"),
            models.Index(fields=["timestamp"], name="tracking_ev_timesta_f77228_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event or self.name} ({self.message_id})"


class Profile(models.Model):
    """The real-time profile of a visitor, updated by every event that is stored (exactly once).

    Keyed by ``u:<user id>`` for known people and ``a:<anonymous id>`` for anonymous visitors; an
    anonymous profile identified later is merged into the person's and points at it.
    """

    key = models.CharField(max_length=140)
    user_id = models.CharField(max_length=128, blank=True)
    anonymous_id = models.CharField(max_length=128, blank=True)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    session_id = models.CharField(max_length=32, blank=True)
    session_started_at = models.DateTimeField(null=True, blank=True)
    sessions = models.PositiveIntegerField(default=0)
    page_views = models.PositiveIntegerField(default=0)
    product_views = models.PositiveIntegerField(default=0)
    adds = models.PositiveIntegerField(default=0)
    removes = models.PositiveIntegerField(default=0)
    orders = models.PositiveIntegerField(default=0)
    cancellations = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    last_order_at = models.DateTimeField(null=True, blank=True)
    last_order_id = models.CharField(max_length=100, blank=True)
    recently_viewed = models.JSONField(default=list, blank=True, help_text="SKUs, newest first.")
    cart = models.JSONField(default=dict, blank=True, help_text="{SKU: quantity}")
    category_affinity = models.JSONField(default=dict, blank=True, help_text="{category path: [score, as of]}")
    brand_affinity = models.JSONField(default=dict, blank=True, help_text="{brand: [score, as of]}")
    traits = models.JSONField(default=dict, blank=True, help_text="From identify calls.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at"]
        # Plain indexes (no LIKE pattern indexes, which nothing uses): each profile row is rewritten
        # with every batch of its visitor's events. The table also keeps free space in each page
        # (fillfactor, migration 0005) so that rewrite is a HOT update that touches no index.
        constraints = [models.UniqueConstraint(fields=["key"], name="profile_key_once")]
        indexes = [
            models.Index(fields=["user_id"], name="profile_user"),
            models.Index(fields=["anonymous_id"], name="profile_anonymous"),
        ]

    def __str__(self) -> str:
        return self.key


class IngestCount(models.Model):
    """What became of the events each source sent, per day: counted once, with the events."""

    class Outcome(models.TextChoices):
        STORED = "stored", "Stored"
        DUPLICATE = "duplicate", "Duplicate (already stored)"
        REJECTED = "rejected", "Rejected (invalid)"
        NO_CONSENT = "no_consent", "Dropped: no analytics consent"
        SUPPRESSED = "suppressed", "Dropped: erased subject"
        BOT = "bot", "Dropped: bot"

    day = models.DateField()
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "source", "outcome"]
        constraints = [models.UniqueConstraint(fields=["day", "source", "outcome"], name="ingest_count_once")]

    def __str__(self) -> str:
        return f"{self.day} {self.outcome}: {self.count}"


class ProcessedBatch(models.Model):
    """Batches already processed, so one processed again (a consumer died between commit and
    acknowledgement) changes nothing, its counts included. Purged with old events."""

    id = models.CharField(primary_key=True, max_length=32)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.id
