from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from import_export.admin import ImportExportModelAdmin

from personalization import services
from personalization.models import Category, Product
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
