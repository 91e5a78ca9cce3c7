from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from consent import services
from consent.exceptions import ConsentError
from consent.links import export_download_path
from consent.models import (
    ConsentRecord,
    ErasureReceipt,
    ExportRequest,
    PolicyVersion,
    PreferenceLink,
    Purpose,
    StaffAccessLog,
    SubjectLink,
    Suppression,
)
from consent.selectors import identities_for
from consent.subjects import Subject


class ReadOnlyAdmin(admin.ModelAdmin):
    """Proof and audit trails: visible to staff, changed by nobody."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "legal_basis", "is_required", "opt_out_jurisdictions", "position"]
    list_editable = ["position"]
    search_fields = ["key", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Purpose | None = None) -> tuple[str, ...]:
        return ("key", "created_at", "updated_at") if obj else ("created_at", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # code asks for purposes by key; records point at them

    def save_model(self, request: HttpRequest, obj: Purpose, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.purposes_changed()


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "title", "requires_renewal", "published_at", "published_by"]
    filter_horizontal = ["purposes"]
    readonly_fields = ["published_at", "published_by", "created_at"]
    actions = ["publish"]

    def has_change_permission(self, request: HttpRequest, obj: PolicyVersion | None = None) -> bool:
        if obj is not None and obj.published_at is not None:
            return False  # a published version is what people agreed to
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: PolicyVersion | None = None) -> bool:
        return obj is not None and obj.published_at is None and super().has_delete_permission(request, obj)

    @admin.action(description="Publish (the banner asks everyone again)", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        for version in queryset.order_by("version"):
            try:
                services.policy_version_publish(policy_version=version, published_by=request.user)  # type: ignore[arg-type]
            except ConsentError as exc:
                self.message_user(request, f"Version {version.version} not published: {exc.message}.", messages.ERROR)
            else:
                self.message_user(request, f"Version {version.version} is published.")


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    list_display = ["recorded_at", "subject", "purpose", "granted", "source", "policy_version", "gpc"]
    list_filter = ["purpose", "source", "granted", "gpc", "recorded_at"]
    search_fields = ["=user_id", "=anonymous_id"]
    search_help_text = "An exact user id or anonymous id. Searches are recorded in the staff access log."
    date_hierarchy = "recorded_at"
    list_select_related = ["purpose", "policy_version"]
    show_full_result_count = False

    @admin.display(description="subject")
    def subject(self, record: ConsentRecord) -> str:
        return record.user_id or record.anonymous_id or "(erased)"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        term = search_term.strip()
        if term:
            for subject in (Subject(user_id=term), Subject(anonymous_id=term)):
                services.staff_access_record(
                    staff=request.user,  # type: ignore[arg-type]
                    action=StaffAccessLog.Action.SEARCH,
                    identities=identities_for(subject),
                    what="consent records",
                )
        return super().get_search_results(request, queryset, search_term)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        record = ConsentRecord.objects.filter(pk=object_id).first()
        if record is not None and (record.user_id or record.anonymous_id):
            services.staff_access_record(
                staff=request.user,  # type: ignore[arg-type]
                action=StaffAccessLog.Action.VIEW,
                identities=identities_for(Subject(user_id=record.user_id, anonymous_id=record.anonymous_id)),
                what=f"consent record {record.pk}",
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SubjectLink)
class SubjectLinkAdmin(ReadOnlyAdmin):
    list_display = ["linked_at", "anonymous_id", "user_id", "source"]
    search_fields = ["=anonymous_id", "=user_id"]


@admin.register(PreferenceLink)
class PreferenceLinkAdmin(ReadOnlyAdmin):
    """Links hold a random token that only its e-mail or page knows; here, only whose it is."""

    list_display = ["created_at", "user_id", "anonymous_id", "expires_at", "revoked_at"]
    list_filter = ["created_at", "expires_at", "revoked_at"]
    search_fields = ["=user_id", "=anonymous_id"]
    exclude = ["token_digest"]
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and bool(request.user.has_perm("consent.change_preferencelink"))  # for the action

    @admin.action(description="Revoke every working link of these people", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PreferenceLink]) -> None:
        people = {Subject(user_id=link.user_id, anonymous_id=link.anonymous_id) for link in queryset}
        revoked = sum(services.preference_links_revoke(subject=person) for person in people)
        self.message_user(request, f"{revoked} link(s) revoked.", messages.SUCCESS)


@admin.register(ErasureReceipt)
class ErasureReceiptAdmin(ReadOnlyAdmin):
    list_display = ["completed_at", "id", "requested_via", "requested_by"]
    list_filter = ["requested_via", "completed_at"]


@admin.register(ExportRequest)
class ExportRequestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "id", "status", "requested_via", "size_bytes", "expires_at", "download"]
    list_filter = ["status", "requested_via"]
    exclude = ["content"]

    @admin.display(description="download")
    def download(self, export: ExportRequest) -> str:
        if (
            export.status != ExportRequest.Status.READY
            or export.expires_at is None
            or export.expires_at < timezone.now()
        ):
            return "—"
        return format_html('<a href="{}">JSON</a>', export_download_path(export.pk))


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["subject_hash", "created_at"]


@admin.register(StaffAccessLog)
class StaffAccessLogAdmin(ReadOnlyAdmin):
    list_display = ["at", "staff_username", "action", "what", "subject_hash"]
    list_filter = ["action", "at", "staff_username"]
    search_fields = ["=subject_hash", "staff_username"]
