"""django-import-export resources: products and categories as CSV, XLSX or JSON in the admin.

A row that fails shows in the import preview with the row number and the field; nothing is
written until the merchandiser confirms a preview without errors.
"""

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from import_export import fields, resources, widgets
from import_export.formats.base_formats import CSV, JSON, XLSX

from personalization.catalog_input import CATEGORY_SEPARATOR, PRODUCT_FIELDS
from personalization.models import Category, Product
from personalization.services import category_ensure_paths

SPREADSHEET_FORMATS = [CSV, XLSX, JSON]


def normalize_category_path(value: Any) -> str:
    parts = [part.strip() for part in str(value or "").split(">")]
    if parts == [""]:
        return ""
    if any(not part for part in parts):
        raise ValueError(f'Category path "{value}" has an empty level; write "Parent > Child".')
    if any(len(part) > 100 for part in parts):
        raise ValueError(f'Category path "{value}" has a level longer than 100 characters.')
    return CATEGORY_SEPARATOR.join(parts)


class CategoryPathWidget(widgets.Widget):
    """A category as its path ("Home > Kitchen"); missing levels are created on import."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Category | None:
        path = normalize_category_path(value)
        return category_ensure_paths(paths=[path])[path] if path else None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.path if value else ""


class PriceWidget(widgets.DecimalWidget):
    """A decimal whose error names the value, instead of Python's ``decimal.ConversionSyntax``."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Decimal | None:
        try:
            cleaned: Decimal | None = super().clean(value, row, **kwargs)
            return cleaned
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a price; write it like 2.50.") from exc


class TagsWidget(widgets.Widget):
    """Tags as a comma-separated cell: "gift, summer"."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> list[str]:
        if isinstance(value, list):
            return [str(tag).strip() for tag in value if str(tag).strip()]
        return [tag.strip() for tag in str(value or "").split(",") if tag.strip()]

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return ", ".join(value or [])


class AttributesWidget(widgets.Widget):
    """Attributes as a JSON object in one cell: {"colour": "red"}."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f'Attributes must be a JSON object, e.g. {{"colour": "red"}}: {exc.msg}.') from exc
        if not isinstance(parsed, dict):
            raise ValueError('Attributes must be a JSON object, e.g. {"colour": "red"}.')
        return parsed

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return json.dumps(value or {}, ensure_ascii=False, sort_keys=True)


class ProductResource(resources.ModelResource):
    price = fields.Field(attribute="price", column_name="price", widget=PriceWidget())
    category = fields.Field(attribute="category", column_name="category", widget=CategoryPathWidget())
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    attributes = fields.Field(attribute="attributes", column_name="attributes", widget=AttributesWidget())

    class Meta:
        model = Product
        import_id_fields = ["sku"]
        fields = PRODUCT_FIELDS
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def before_save_instance(self, instance: Product, row: Any, **kwargs: Any) -> None:
        # Without an in_stock column, the stock count decides (as in the API).
        has_in_stock = "in_stock" in row and row["in_stock"] not in (None, "")
        if not has_in_stock and instance.stock is not None:
            instance.in_stock = instance.stock > 0


class CategoryResource(resources.ModelResource):
    """Categories by path; importing "A > B > C" also creates "A" and "A > B"."""

    class Meta:
        model = Category
        import_id_fields = ["path"]
        fields = ["path", "name", "depth", "slug"]
        export_order = fields
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        row["path"] = normalize_category_path(row.get("path"))
        if not row["path"]:
            raise ValueError("The path column is empty.")

    def import_instance(self, instance: Category, row: Any, **kwargs: Any) -> None:
        # Only the path is imported; name, depth and slug follow from it.
        instance.path = row["path"]

    def save_instance(self, instance: Category, is_create: bool, row: Any, **kwargs: Any) -> None:
        saved = category_ensure_paths(paths=[instance.path])[instance.path]
        instance.pk, instance.name, instance.depth, instance.slug = saved.pk, saved.name, saved.depth, saved.slug
