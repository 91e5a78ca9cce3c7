from datetime import timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportModelAdmin

from consent.subjects import Subject
from personalization import kpis, services, serving, tasks
from personalization.model_store import hash_key_changed
from personalization.models import (
    Campaign,
    CampaignVersion,
    Category,
    ModelVersion,
    Placement,
    Product,
    Strategy,
    TunedParameters,
)
from personalization.resources import SPREADSHEET_FORMATS, CategoryResource, ProductResource
from personalization.selectors import model_version_active
from personalization.services import campaigns as campaign_services
from tracking.models import Customer


class DepartmentFilter(admin.SimpleListFilter):
    """Filter products by top-level category, including everything below it."""

    title = "department"
    parameter_name = "department"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(c.pk), c.name) for c in Category.objects.filter(parent__isnull=True).order_by("name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        root = Category.objects.filter(pk=str(self.value())).first()
        if root is None:
            return queryset.none()
        return queryset.filter(category__path__startswith=root.path)


@admin.register(Product)
class ProductAdmin(ImportExportModelAdmin):
    resource_classes = [ProductResource]
    formats = SPREADSHEET_FORMATS
    list_display = ["sku", "name", "category", "brand", "price_display", "stock", "in_stock", "is_active", "updated_at"]
    list_display_links = ["sku", "name"]
    list_filter = ["is_active", "in_stock", DepartmentFilter, "currency", "updated_at"]
    search_fields = ["sku", "name", "brand", "description"]
    list_select_related = ["category"]
    autocomplete_fields = ["category"]
    readonly_fields = ["created_at", "updated_at", "image_preview"]
    list_per_page = 50
    show_full_result_count = False
    actions = ["activate", "deactivate"]
    fieldsets = [
        (None, {"fields": ["sku", "name", "description", "category", "brand", "tags"]}),
        ("Price and stock", {"fields": ["price", "currency", "stock", "in_stock", "is_active"]}),
        ("Links", {"fields": ["url", "image_url", "image_preview"]}),
        ("Attributes", {"fields": ["attributes"], "classes": ["collapse"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="price", ordering="price")
    def price_display(self, product: Product) -> str:
        return f"{product.price} {product.currency}"

    @admin.display(description="image")
    def image_preview(self, product: Product) -> str:
        if not product.image_url:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:120px">', product.image_url)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Product], active: bool) -> None:
        result = services.product_bulk_set_active(skus=queryset.values_list("sku", flat=True), active=active)
        verb = "activated" if active else "deactivated"
        self.message_user(request, f"{len(result.changed)} products {verb}; {len(result.already)} already were.")

    @admin.action(description="Activate selected products", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected products (never recommended)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        self._set_active(request, queryset, False)


class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "parent"]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if ">" in name:
            raise forms.ValidationError("A category name cannot contain '>' (it separates the levels of a path).")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        parent, instance = cleaned.get("parent"), self.instance
        if (
            instance.pk
            and parent is not None
            and (parent.pk == instance.pk or parent.path.startswith(instance.path + " > "))
        ):
            raise forms.ValidationError(
                {"parent": "A category cannot be moved under itself or one of its descendants."}
            )
        return cleaned


@admin.register(Category)
class CategoryAdmin(ImportExportModelAdmin):
    resource_classes = [CategoryResource]
    formats = SPREADSHEET_FORMATS
    form = CategoryForm
    list_display = ["path", "depth", "product_count", "updated_at"]
    list_filter = ["depth"]
    search_fields = ["name", "path"]
    autocomplete_fields = ["parent"]
    readonly_fields = ["path", "slug", "depth", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(description="products (direct)", ordering="product_count")
    def product_count(self, category: Category) -> int:
        return category.product_count  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Category, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            services.category_update(category=obj, name=data["name"], parent=data["parent"])
        else:
            created = services.category_create(name=data["name"], parent=data["parent"])
            obj.pk = created.pk
            obj.path = created.path
        messages.info(request, f"Category path: {obj.path}")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Trained versions: what they scored on the hold-out, how long each part took, and which one
    serves. Activating an older version is the rollback; "Train now" starts a training."""

    change_list_template = "admin/personalization/modelversion/change_list.html"
    list_display = ["id", "status", "trigger", "created_at", "data_until", "score_display", "seconds", "activated_at"]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["id", "trigger", "activated_by"]
    actions = ["activate"]
    readonly_fields = [
        "status", "trigger", "score", "metrics_table", "session_table", "timings_table", "counts", "params",
        "data_since", "data_until", "holdout_since", "artifact_path", "revision", "error", "created_at",
        "finished_at", "activated_at", "activated_by",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        active = model_version_active()
        if active is not None:
            self._warn_of_hash_key(request, active)
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        version = ModelVersion.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if version is not None:
            self._warn_of_hash_key(request, version)
        return super().change_view(request, object_id, form_url, extra_context)

    def _warn_of_hash_key(self, request: HttpRequest, version: ModelVersion) -> None:
        """The version's people were hashed with another PZ_PRIVACY_HASH_KEY: say what it means."""
        if version.artifact_path and hash_key_changed(Path(version.artifact_path)):
            serving_now = "It serves now: every" if version.status == ModelVersion.Status.ACTIVE else "If served, every"
            self.message_user(
                request,
                f"Version {version.pk} was trained with another PZ_PRIVACY_HASH_KEY than the one set now. "
                f"{serving_now} customer gets the non-personalized cold-start list until a training with "
                "the current key (Train now), or until the key is set back.",
                messages.WARNING,
            )

    @admin.display(description="hold-out NDCG@10", ordering="score")
    def score_display(self, version: ModelVersion) -> str:
        return "—" if version.score is None else f"{version.score:.4f}"

    @admin.display(description="seconds")
    def seconds(self, version: ModelVersion) -> str:
        total = version.timings.get("total")
        return "—" if total is None else f"{total:.1f}"

    @admin.display(description="hold-out metrics at 10")
    def metrics_table(self, version: ModelVersion) -> str:
        rows = []
        for name, protocols in version.metrics.items():
            if name == "session":
                continue
            for protocol, m in protocols.items():
                rows.append(
                    [
                        name,
                        protocol,
                        *(f"{m[key]:.4f}" for key in ("ndcg", "precision", "recall", "map", "coverage")),
                        m["people"],
                    ]
                )
        return _table(["recommender", "protocol", "NDCG", "precision", "recall", "MAP", "coverage", "people"], rows)

    @admin.display(description="next basket lines (session-aware)")
    def session_table(self, version: ModelVersion) -> str:
        session = version.metrics.get("session") or {}
        rows = [[name.replace("_", " "), f"{m['ndcg']:.4f}", m["people"]] for name, m in session.items()]
        return _table(["blend", "NDCG@10", "orders"], rows)

    @admin.display(description="seconds per part")
    def timings_table(self, version: ModelVersion) -> str:
        return _table(["part", "seconds"], [[part, f"{seconds:.2f}"] for part, seconds in version.timings.items()])

    @admin.action(description="Activate (serve from this version: the rollback)", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = services.model_version_activate(version=queryset.get(), by=f"admin: {request.user}")
        except services.ModelVersionError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, f"Version {version.pk} is active; serving picks it up within seconds.")

    def get_urls(self) -> list[URLPattern]:
        urls = [path("train/", self.admin_site.admin_view(self.train_now), name="personalization_modelversion_train")]
        return urls + super().get_urls()

    def train_now(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        trigger = f"admin: {request.user}"
        transaction.on_commit(lambda: tasks.models_train.delay(trigger=trigger))
        self.message_user(request, "Training started; the new version appears here when it is done.")
        return redirect("admin:personalization_modelversion_changelist")


@admin.register(TunedParameters)
class TunedParametersAdmin(admin.ModelAdmin):
    list_display = ["created_at", "data_until"]
    readonly_fields = ["params", "metrics", "data_until", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# --- placements and campaigns --------------------------------------------------------------------------


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "kind", "latency_budget_ms", "default_limit", "is_active", "campaign_count"]
    list_filter = ["kind", "is_active"]
    search_fields = ["key", "name"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Placement]:
        return super().get_queryset(request).annotate(campaign_count=Count("campaigns"))

    @admin.display(description="campaigns", ordering="campaign_count")
    def campaign_count(self, placement: Placement) -> int:
        return placement.campaign_count  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Placement, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        campaign_services.placement_saved()


STRATEGY_KEYS = set(Strategy.values)
DEVICES = {"desktop", "mobile", "tablet"}


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        exclude: list[str] = []  # every editable field; the admin's fieldsets order them

    def _list(self, name: str) -> list[Any]:
        value = self.cleaned_data.get(name) or []
        if not isinstance(value, list):
            raise forms.ValidationError("Give a JSON list.")
        return value

    def clean_fallback_strategies(self) -> list[str]:
        value = self._list("fallback_strategies")
        unknown = [s for s in value if s not in STRATEGY_KEYS]
        if unknown:
            raise forms.ValidationError(f"Unknown strategies: {', '.join(map(str, unknown))}.")
        return value

    def clean_audience_countries(self) -> list[str]:
        value = [str(c).upper() for c in self._list("audience_countries")]
        wrong = [c for c in value if len(c) != 2 or not c.isalpha()]
        if wrong:
            raise forms.ValidationError(f"Use two-letter ISO codes: {', '.join(wrong)}.")
        return value

    def clean_audience_devices(self) -> list[str]:
        value = self._list("audience_devices")
        wrong = [d for d in value if d not in DEVICES]
        if wrong:
            raise forms.ValidationError(f"Devices are {', '.join(sorted(DEVICES))}; not {', '.join(map(str, wrong))}.")
        return value

    def clean_pins(self) -> list[dict[str, Any]]:
        value = self._list("pins")
        for pin in value:
            if not (isinstance(pin, dict) and isinstance(pin.get("sku"), str) and isinstance(pin.get("position"), int)):
                raise forms.ValidationError('Each pin is {"sku": "…", "position": 1}.')
            if pin["position"] < 1:
                raise forms.ValidationError("Positions start at 1.")
        return value

    def clean_boosts(self) -> list[dict[str, Any]]:
        value = self._list("boosts")
        for boost in value:
            if not (
                isinstance(boost, dict)
                and boost.get("kind") in ("brand", "category")
                and isinstance(boost.get("value"), str)
                and isinstance(boost.get("factor"), int | float)
                and boost["factor"] > 0
            ):
                raise forms.ValidationError(
                    'Each boost is {"kind": "brand" or "category", "value": "…", "factor": 1.5}.'
                )
        return value


class CampaignVersionInline(admin.TabularInline):
    model = CampaignVersion
    fields = ["version", "changed_by", "changed_at", "note", "rollback"]
    readonly_fields = ["version", "changed_by", "changed_at", "note", "rollback"]
    extra = 0
    can_delete = False
    ordering = ["-version"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="")
    def rollback(self, version: CampaignVersion) -> str:
        if version.version == version.campaign.version:
            return "current"
        url = reverse("admin:personalization_campaign_rollback", args=[version.campaign_id, version.version])
        return format_html(
            '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="button">Roll back to this version</button></form>',
            url,
            self._csrf,
        )

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        self._csrf = get_token(request)
        return super().get_formset(request, obj, **kwargs)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Merchandisers configure what each slot shows here; every save is a version."""

    form = CampaignForm
    change_list_template = "admin/personalization/campaign/change_list.html"
    change_form_template = "admin/personalization/campaign/change_form.html"
    list_display = [
        "name",
        "placement",
        "strategy",
        "priority",
        "is_active",
        "starts_at",
        "ends_at",
        "version",
        "updated_by",
    ]
    list_filter = ["placement", "strategy", "is_active", "exploration"]
    search_fields = ["name", "placement__key"]
    list_select_related = ["placement"]
    readonly_fields = ["version", "updated_at", "updated_by", "created_at"]
    inlines = [CampaignVersionInline]
    fieldsets = [
        (None, {"fields": ["placement", "name", "is_active", "priority", ("starts_at", "ends_at")]}),
        ("What it shows", {"fields": ["strategy", "fallback_strategies", "limit"]}),
        (
            "Audience",
            {"fields": ["audience_visitors", "audience_customers", "audience_countries", "audience_devices"]},
        ),
        (
            "Business rules",
            {
                "fields": [
                    "in_stock_only",
                    ("exclude_purchased", "exclude_purchased_days"),
                    "exclude_in_cart",
                    ("include_categories", "exclude_categories"),
                    ("include_brands", "exclude_brands"),
                    ("min_price", "max_price"),
                    ("min_price_ratio", "max_price_ratio"),
                    "pins",
                    "boosts",
                    ("max_per_category", "diversity"),
                ]
            },
        ),
        ("Exploration", {"fields": ["exploration", "exploration_rate"], "classes": ["collapse"]}),
        ("History", {"fields": ["version", "updated_by", "updated_at", "created_at"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        campaign_services.campaign_save(campaign=obj, by=str(request.user.get_username()))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("performance/", view(self.performance), name="personalization_campaign_performance"),
            path("<int:campaign_id>/preview/", view(self.preview), name="personalization_campaign_preview"),
            path(
                "<int:campaign_id>/rollback/<int:version>/",
                view(self.rollback),
                name="personalization_campaign_rollback",
            ),
            *super().get_urls(),
        ]

    def rollback(self, request: HttpRequest, campaign_id: int, version: int) -> HttpResponse:
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if request.method != "POST" or campaign is None or not self.has_change_permission(request, campaign):
            raise PermissionDenied
        try:
            restored = campaign_services.campaign_rollback(
                campaign=campaign, version=version, by=str(request.user.get_username())
            )
        except campaign_services.CampaignError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, f"Rolled back to version {version}: this is version {restored.version}.")
        return redirect("admin:personalization_campaign_change", campaign_id)

    def preview(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        campaign = Campaign.objects.select_related("placement").filter(pk=campaign_id).first()
        if campaign is None or not self.has_view_permission(request, campaign):
            raise PermissionDenied
        customer = request.GET.get("customer", "").strip()
        product = request.GET.get("product", "").strip()
        result, error = campaign_preview(campaign, customer, product) if customer else (None, "")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {campaign.name}",
            "campaign": campaign,
            "opts": self.model._meta,
            "customer": customer,
            "product": product,
            "result": result,
            "error": error,
        }
        return TemplateResponse(request, "admin/personalization/campaign/preview.html", context)

    def performance(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = int(request.GET.get("days", "30")) if request.GET.get("days", "30").isdigit() else 30
        days = min(max(days, 1), 365)
        until = timezone.now()
        since = until - timedelta(days=days)
        rows = kpis.campaign_kpis(since=since, until=until)
        series = kpis.kpi_days(since=since, until=until)
        context = {
            **self.admin_site.each_context(request),
            "title": "Campaign performance",
            "opts": self.model._meta,
            "days": days,
            "rows": rows,
            "chart": kpi_chart(series),
            "series": series,
            "fallbacks": sorted(serving.fallback_counts(days=min(days, 40)).items()),
        }
        return TemplateResponse(request, "admin/personalization/campaign/performance.html", context)


def campaign_preview(campaign: Campaign, customer: str, product: str) -> tuple[Any, str]:
    """Exactly what the customer would get from the campaign's placement now (nothing is logged)."""
    if not Customer.objects.filter(user_id=customer).exists():
        return None, f"There is no customer {customer}."
    if product and not Product.objects.filter(sku=product).exists():
        return None, f"There is no product {product}."
    served = serving.serve(
        serving.ServeRequest(placement=campaign.placement.key, subject=Subject(user_id=customer), product=product)
    )
    if served.campaign is not None and served.campaign.id != campaign.pk:
        return served, f"This customer gets another campaign of the placement now: {served.campaign.name}."
    return served, ""


def kpi_chart(series: list[Any], width: int = 720, height: int = 180) -> dict[str, Any]:
    """Polylines of impressions and clicks per day, for an inline SVG (no JavaScript)."""
    if not series:
        return {}
    top = max(max(k.impressions, k.clicks, k.served) for _, k in series) or 1
    step = width / max(len(series) - 1, 1)

    def line(values: list[int]) -> str:
        return " ".join(f"{i * step:.1f},{height - v / top * (height - 10):.1f}" for i, v in enumerate(values))

    return {
        "width": width,
        "height": height,
        "served": line([k.served for _, k in series]),
        "impressions": line([k.impressions for _, k in series]),
        "clicks": line([k.clicks for _, k in series]),
        "top": top,
        "first": series[0][0],
        "last": series[-1][0],
    }
