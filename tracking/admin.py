from typing import Any

import redis
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from import_export import fields, resources
from import_export.admin import ExportMixin

from consent.models import StaffAccessLog
from consent.selectors import identities_for
from consent.services import export_request_create, staff_access_record, subject_erase
from consent.subjects import Subject
from personalization.resources import SPREADSHEET_FORMATS
from tracking import services
from tracking.dead_letters import dead_letters_count
from tracking.models import Customer, Event, IngestCount, Order, OrderLine, Profile, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "write_key", "secret_key_prefix", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "write_key"]
    readonly_fields = ["write_key", "secret_key_prefix", "created_at", "updated_at"]
    actions = ["rotate_secret_key"]

    def get_fields(self, request: HttpRequest, obj: Source | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("name",)
        return ("name", "is_active", "allowed_origins", "write_key", "secret_key_prefix", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            services.source_cache_forget(source=obj)
            return
        keys = services.source_create(name=form.cleaned_data["name"])
        obj.pk = keys.source.pk
        messages.warning(
            request,
            f"Source created. Write key (public, for pz.js and SDKs): {keys.write_key} — "
            f"Secret key (server-side only; copy it now, it is not shown again): {keys.secret_key}",
        )

    @admin.action(description="Rotate the secret key (the old one stops working)", permissions=["change"])
    def rotate_secret_key(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            secret_key = services.source_rotate_secret_key(source=source)
            messages.warning(request, f"New secret key for {source.name} (copy it now): {secret_key}")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["user_id", "country", "order_count", "first_seen_at", "created_at"]
    list_filter = ["country"]
    search_fields = ["user_id", "email"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False
    actions = ["export_personal_data", "erase_personal_data"]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        customer = Customer.objects.filter(pk=object_id).first()
        if customer is not None:
            staff_access_record(
                staff=request.user,  # type: ignore[arg-type]
                action=StaffAccessLog.Action.VIEW,
                identities=identities_for(Subject(user_id=customer.user_id)),
                what="customer profile",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Export personal data (a JSON file per customer)", permissions=["view"])
    def export_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        for customer in queryset:
            export_request_create(
                subject=Subject(user_id=customer.user_id),
                requested_via="admin",
                requested_by=request.user,  # type: ignore[arg-type]
            )
        self.message_user(request, f"{queryset.count()} exports requested; download them from Export requests.")

    @admin.action(description="Erase personal data (cannot be undone)", permissions=["delete"])
    def erase_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        if request.POST.get("confirm") != "erase":
            context = {**self.admin_site.each_context(request), "customers": queryset, "opts": self.model._meta}
            return TemplateResponse(request, "admin/tracking/customer/erase_confirmation.html", context)
        user_ids = list(queryset.values_list("user_id", flat=True))
        for user_id in user_ids:
            subject_erase(subject=Subject(user_id=user_id), requested_via="admin", requested_by=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"{len(user_ids)} customers erased; receipts are under Erasure receipts.")
        return None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).annotate(order_count=Count("orders"))

    @admin.display(description="orders", ordering="order_count")
    def order_count(self, customer: Customer) -> int:
        return customer.order_count  # type: ignore[attr-defined]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = readonly_fields = ("position", "sku", "name", "quantity", "unit_price", "product")
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderResource(resources.ModelResource):
    customer = fields.Field(attribute="customer__user_id", column_name="customer")
    lines = fields.Field(column_name="lines")

    class Meta:
        model = Order
        fields = [
            "order_id",
            "status",
            "customer",
            "anonymous_id",
            "placed_at",
            "revenue",
            "currency",
            "origin",
            "lines",
        ]
        export_order = fields

    def dehydrate_lines(self, order: Order) -> int:
        return order.line_count  # type: ignore[attr-defined]


@admin.register(Order)
class OrderAdmin(ExportMixin, admin.ModelAdmin):
    """Orders are facts: they are recorded by imports, checkouts and events, never edited here."""

    resource_classes = [OrderResource]
    formats = SPREADSHEET_FORMATS
    list_display = ["order_id", "status", "customer", "placed_at", "revenue", "currency", "line_count", "origin"]
    list_filter = ["status", "origin", "currency"]
    search_fields = ["order_id", "customer__user_id", "anonymous_id"]
    date_hierarchy = "placed_at"
    list_select_related = ["customer"]
    inlines = [OrderLineInline]
    show_full_result_count = False
    # Every field, read-only: orders are never edited here.
    readonly_fields = tuple(field.name for field in Order._meta.concrete_fields if field.name != "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).annotate(line_count=Count("lines"))

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, order: Order) -> int:
        return order.line_count  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TrackingReadOnlyAdmin(admin.ModelAdmin):
    """Events and profiles come from the stream; staff look, nobody edits."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _audit(self, request: HttpRequest, user_id: str, anonymous_id: str, what: str) -> None:
        if user_id or anonymous_id:
            staff_access_record(
                staff=request.user,  # type: ignore[arg-type]
                action=StaffAccessLog.Action.VIEW,
                identities=identities_for(Subject(user_id=user_id, anonymous_id=anonymous_id)),
                what=what,
            )


@admin.register(Event)
class EventAdmin(TrackingReadOnlyAdmin):
    list_display = ["timestamp", "type", "event", "name", "user_id", "anonymous_id", "source"]
    list_filter = ["type", "source", "timestamp"]
    search_fields = ["=message_id", "=user_id", "=anonymous_id", "event"]
    date_hierarchy = "timestamp"
    list_select_related = ["source"]
    show_full_result_count = False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        event = Event.objects.filter(pk=object_id).first()
        if event is not None:
            self._audit(request, event.user_id, event.anonymous_id, f"event {event.pk}")
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Profile)
class ProfileAdmin(TrackingReadOnlyAdmin):
    list_display = ["key", "last_seen_at", "sessions", "product_views", "adds", "orders", "revenue", "merged_into"]
    list_filter = ["last_seen_at"]
    search_fields = ["=key", "=user_id", "=anonymous_id"]
    show_full_result_count = False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        profile = Profile.objects.filter(pk=object_id).first()
        if profile is not None:
            self._audit(request, profile.user_id, profile.anonymous_id, "real-time profile")
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(IngestCount)
class IngestCountAdmin(TrackingReadOnlyAdmin):
    list_display = ["day", "source", "outcome", "count"]
    list_filter = ["outcome", "source", "day"]
    date_hierarchy = "day"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Beside the counts, the events set aside in the dead-letter stream (none without Redis)."""
        try:
            waiting: int | None = dead_letters_count()
        except redis.RedisError:
            waiting = None
        context = {"dead_letters": waiting, "streaming": bool(settings.REDIS_URL), **(extra_context or {})}
        return super().changelist_view(request, context)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
