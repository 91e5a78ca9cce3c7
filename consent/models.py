"""Consent: what a person allowed, under which policy, with the proof.

``ConsentRecord`` rows are append-only proof. The database refuses to update or delete them (see
migration 0002); the single exception is erasure, which may only strip identifiers from them.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Purpose(models.Model):
    """Something personal data is used for. Keys are stable: code asks ``consent_allows(..., "analytics")``."""

    class LegalBasis(models.TextChoices):
        CONSENT = "consent", "Consent (GDPR art. 6(1)(a))"
        CONTRACT = "contract", "Performance of a contract (art. 6(1)(b))"
        LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (art. 6(1)(c))"
        LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest (art. 6(1)(f))"

    key = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(help_text="Shown to customers in the banner and the preference center.")
    legal_basis = models.CharField(max_length=32, choices=LegalBasis.choices, default=LegalBasis.CONSENT)
    is_required = models.BooleanField(
        default=False, help_text="Always on and cannot be refused (strictly necessary processing)."
    )
    opt_out_jurisdictions = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Where this purpose is on until the person refuses it (opt-out): ISO 3166 country codes, or "
            '"*" for everywhere. Empty: opt-in everywhere, the lawful default in the EU and UK.'
        ),
    )
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "key"]

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    """A version of the privacy policy. Publishing one makes the banner ask again."""

    version = models.PositiveIntegerField(unique=True)
    title = models.CharField(max_length=200)
    url = models.CharField("URL", max_length=500, blank=True, help_text="Where the policy text is published.")
    text = models.TextField(blank=True)
    purposes = models.ManyToManyField(Purpose, related_name="policy_versions")
    requires_renewal = models.BooleanField(
        default=True,
        help_text=(
            "A material change: consents given under earlier versions stop counting until the person "
            "chooses again. Leave off for corrections that change nothing a person agreed to."
        ),
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version}: {self.title}"


class ConsentRecordImmutable(Exception):
    pass


class ConsentRecordQuerySet(models.QuerySet["ConsentRecord"]):
    """Refuses bulk updates and deletes before they reach the database (which refuses them too)."""

    def update(self, **kwargs: object) -> int:
        raise ConsentRecordImmutable("Consent records are append-only: record a new choice instead.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ConsentRecordImmutable("Consent records are append-only and cannot be deleted.")

    def strip_identifiers(self, *, erased_subject: str) -> int:
        """Erasure only: replace the ids, IP address and user agent by a keyed hash. The database
        allows it only while an erasure holds a ``RecordUnlock`` row in its own transaction."""
        return super().update(user_id="", anonymous_id="", ip_address="", user_agent="", erased_subject=erased_subject)


class ConsentRecord(models.Model):
    """One choice of one person for one purpose: append-only proof."""

    class Source(models.TextChoices):
        BANNER = "banner", "Consent banner"
        PREFERENCE_CENTER = "preference_center", "Preference center"
        API = "api", "API"
        IMPORT = "import", "Import"
        GPC = "gpc", "Global Privacy Control signal"

    user_id = models.CharField(max_length=128, blank=True, db_index=True)
    anonymous_id = models.CharField(max_length=128, blank=True, db_index=True)
    erased_subject = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="After erasure: the keyed hash of the subject, no ids."
    )
    purpose = models.ForeignKey(Purpose, to_field="key", on_delete=models.PROTECT, related_name="records")
    granted = models.BooleanField(help_text="True for a grant, False for a withdrawal or refusal.")
    policy_version = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=32, choices=Source.choices)
    recorded_at = models.DateTimeField(db_index=True)
    ip_address = models.CharField(max_length=45, blank=True, help_text="Truncated: IPv4 /24, IPv6 /48.")
    user_agent = models.CharField(max_length=512, blank=True)
    gpc = models.BooleanField("GPC signal present", default=False)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["user_id", "recorded_at"]),
            models.Index(fields=["anonymous_id", "recorded_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(user_id="", anonymous_id="", erased_subject=""), name="consent_record_has_subject"
            )
        ]

    def __str__(self) -> str:
        action = "granted" if self.granted else "withdrew"
        return f"{self.user_id or self.anonymous_id or 'erased subject'} {action} {self.purpose_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ConsentRecordImmutable("Consent records are append-only: record a new choice instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ConsentRecordImmutable("Consent records are append-only and cannot be deleted.")


class RecordUnlock(models.Model):
    """Technical: a row exists only inside an erasure's own transaction, while it strips identifiers
    from consent records; the database triggers refuse any other update."""

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Erasure unlock at {self.created_at}"


class SubjectLink(models.Model):
    """An anonymous visitor identified as a known person (identity stitching). Append-only history."""

    anonymous_id = models.CharField(max_length=128, db_index=True)
    user_id = models.CharField(max_length=128, db_index=True)
    linked_at = models.DateTimeField()
    source = models.CharField(max_length=32, default="api")

    class Meta:
        ordering = ["-linked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.anonymous_id} → {self.user_id}"


class Suppression(models.Model):
    """An erased subject, as a keyed hash: their late events are dropped until they consent again."""

    subject_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.subject_hash[:12]


class ErasureReceipt(models.Model):
    """What an erasure removed, per store, without the subject's identifiers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_hashes = models.JSONField(default=list)
    requested_via = models.CharField(max_length=32)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField()
    removed = models.JSONField(default=dict, help_text="{store: {what: count}}")

    class Meta:
        ordering = ["-completed_at"]

    def __str__(self) -> str:
        return f"Erasure {self.id} at {self.completed_at:%Y-%m-%d %H:%M}"


class ExportRequest(models.Model):
    """A subject's request for a copy of their data; the file is built by a Celery task."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=128, blank=True)
    anonymous_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_via = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The download link works until then.")
    # Gzipped JSON, in the database: the worker that builds it and the web process that serves it
    # may run on different hosts.
    content = models.BinaryField(null=True, editable=False)
    size_bytes = models.PositiveIntegerField(default=0, help_text="Size of the JSON before compression.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Export {self.id} ({self.status})"


class StaffAccessLog(models.Model):
    """Who among the staff looked at, exported or erased whose personal data, and when."""

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        SEARCH = "search", "Searched"
        EXPORT = "export", "Exported"
        ERASE = "erase", "Erased"

    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    staff_username = models.CharField(max_length=150, help_text="Kept if the account is deleted.")
    action = models.CharField(max_length=16, choices=Action.choices)
    subject_hash = models.CharField(max_length=64, blank=True, db_index=True)
    what = models.CharField(max_length=200, help_text="What was accessed (no identifiers).")
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = "staff access to personal data"
        verbose_name_plural = "staff access to personal data"

    def __str__(self) -> str:
        return f"{self.staff_username} {self.action} {self.what}"


class PreferenceLink(models.Model):
    """A link to a person's preference center. The link holds only a random token; the table keeps
    its SHA-256 digest (a copy of the table opens no one's page), whose it is, and until when.
    Issuing a new link for the person, an erasure or the admin revokes it."""

    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    user_id = models.CharField(max_length=128, blank=True, db_index=True)
    anonymous_id = models.CharField(max_length=128, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Preference link of {self.user_id or self.anonymous_id}"
