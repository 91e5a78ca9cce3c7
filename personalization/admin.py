from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportModelAdmin

from personalization import services, tasks
from personalization.models import Category, ModelVersion, Product, TunedParameters
from personalization.resources import SPREADSHEET_FORMATS, CategoryResource, ProductResource


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
