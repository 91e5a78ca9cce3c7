"""Writes of the catalog: the category tree and products."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from personalization.catalog_input import CATEGORY_SEPARATOR, ProductIn
from personalization.models import Category, Product

# --- Categories ------------------------------------------------------------------------------


def _path_prefixes(path: str) -> list[str]:
    parts = path.split(CATEGORY_SEPARATOR)
    return [CATEGORY_SEPARATOR.join(parts[: depth + 1]) for depth in range(len(parts))]


def _unique_slug(base: str, *, exclude_pk: int | None = None) -> str:
    slug, suffix = base, 2
    others = Category.objects.exclude(pk=exclude_pk) if exclude_pk is not None else Category.objects.all()
    while others.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return slug


def _slug_for(name: str, parent: Category | None) -> str:
    own = slugify(name) or "category"
    return f"{parent.slug}/{own}" if parent else own


def category_ensure_paths(*, paths: Iterable[str]) -> dict[str, Category]:
    """Return the category of each path (``"Home > Kitchen"``), creating missing levels."""
    wanted = {prefix for path in paths if path for prefix in _path_prefixes(path)}
    found = {category.path: category for category in Category.objects.filter(path__in=wanted)}
    for path in sorted(wanted - found.keys(), key=lambda p: p.count(CATEGORY_SEPARATOR)):
        parent_path, _, name = path.rpartition(CATEGORY_SEPARATOR)
        parent = found[parent_path] if parent_path else None
        try:
            with transaction.atomic():
                found[path] = Category.objects.create(
                    name=name,
                    parent=parent,
                    path=path,
                    depth=path.count(CATEGORY_SEPARATOR),
                    slug=_unique_slug(_slug_for(name, parent)),
                )
        except IntegrityError:  # created meanwhile by a concurrent request
            found[path] = Category.objects.get(path=path)
    return found


def category_create(*, name: str, parent: Category | None) -> Category:
    path = f"{parent.path}{CATEGORY_SEPARATOR}{name}" if parent else name
    return category_ensure_paths(paths=[path])[path]


@transaction.atomic
def category_update(*, category: Category, name: str, parent: Category | None) -> Category:
    """Rename or move a category; the paths and slugs of all its descendants follow."""
    if parent is not None and (parent.pk == category.pk or parent.path.startswith(category.path + CATEGORY_SEPARATOR)):
        raise ValueError("A category cannot be moved under itself or one of its descendants.")
    old_path = category.path
    descendants = list(Category.objects.filter(path__startswith=old_path + CATEGORY_SEPARATOR).order_by("depth"))
    category.name, category.parent = name, parent
    category.path = f"{parent.path}{CATEGORY_SEPARATOR}{name}" if parent else name
    category.depth = category.path.count(CATEGORY_SEPARATOR)
    category.slug = _unique_slug(_slug_for(name, parent), exclude_pk=category.pk)
    category.save()
    by_pk = {category.pk: category}
    for child in descendants:
        child_parent = by_pk[child.parent_id] if child.parent_id is not None else None
        child.path = f"{child_parent.path}{CATEGORY_SEPARATOR}{child.name}" if child_parent else child.name
        child.depth = child.path.count(CATEGORY_SEPARATOR)
        child.slug = _unique_slug(_slug_for(child.name, child_parent), exclude_pk=child.pk)
        child.save(update_fields=["path", "depth", "slug", "updated_at"])
        by_pk[child.pk] = child
    return category


# --- Products --------------------------------------------------------------------------------

# Fields a ``ProductIn`` sets directly when given; ``category``, ``currency`` and ``in_stock`` need resolving.
_PLAIN_FIELDS = (
    "name",
    "description",
    "url",
    "image_url",
    "price",
    "brand",
    "tags",
    "attributes",
    "stock",
    "is_active",
)
_ALL_FIELDS = (*_PLAIN_FIELDS, "category", "currency", "in_stock")


@dataclass(frozen=True)
class ProductUpsertResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def _values_for(row: ProductIn, current: Product | None, categories: dict[str, Category]) -> dict[str, Any]:
    """The field values the product should have. On update, fields the row left out keep theirs."""
    given = row.model_fields_set if current is not None else set(ProductIn.model_fields)
    values: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN_FIELDS if name in given}
    if "category" in given:  # by id: reading current.category would cost a query per product
        values["category_id"] = categories[row.category].pk if row.category else None
    if row.currency is not None:
        values["currency"] = row.currency
    elif current is None:
        values["currency"] = settings.PZ_DEFAULT_CURRENCY
    if current is None or {"in_stock", "stock"} & given:
        values["in_stock"] = row.resolved_in_stock(current.in_stock if current else None)
    return values


@transaction.atomic
def product_bulk_upsert(*, products: Sequence[ProductIn]) -> ProductUpsertResult:
    """Create or update products by SKU. Sending the same rows twice changes nothing the second time."""
    categories = category_ensure_paths(paths={row.category for row in products if row.category})
    existing = {p.sku: p for p in Product.objects.select_for_update().filter(sku__in=[row.sku for row in products])}
    to_create: list[Product] = []
    to_update: list[Product] = []
    changed_fields: set[str] = set()
    unchanged: list[str] = []
    for row in products:
        current = existing.get(row.sku)
        values = _values_for(row, current, categories)
        if current is None:
            to_create.append(Product(sku=row.sku, **values))
            continue
        changed = {name for name, value in values.items() if getattr(current, name) != value}
        if not changed:
            unchanged.append(row.sku)
            continue
        for name in changed:
            setattr(current, name, values[name])
        current.updated_at = timezone.now()
        changed_fields |= changed
        to_update.append(current)
    # update_conflicts makes a concurrent creation of the same SKU an update instead of an error.
    Product.objects.bulk_create(
        to_create,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=[*_ALL_FIELDS, "updated_at"],
    )
    if to_update:
        fields = {"category" if name == "category_id" else name for name in changed_fields}
        Product.objects.bulk_update(to_update, sorted(fields | {"updated_at"}), batch_size=1000)
    return ProductUpsertResult(
        created=[p.sku for p in to_create], updated=[p.sku for p in to_update], unchanged=unchanged
    )


@dataclass(frozen=True)
class ProductActivationResult:
    changed: list[str]
    already: list[str]
    unknown: list[str]


@transaction.atomic
def product_bulk_set_active(*, skus: Iterable[str], active: bool) -> ProductActivationResult:
    """Activate or deactivate products. Deactivated products stay in the catalog, never recommended."""
    wanted = list(dict.fromkeys(skus))
    found = dict(Product.objects.select_for_update().filter(sku__in=wanted).values_list("sku", "is_active"))
    changed = [sku for sku in wanted if sku in found and found[sku] != active]
    Product.objects.filter(sku__in=changed).update(is_active=active, updated_at=timezone.now())
    return ProductActivationResult(
        changed=changed,
        already=[sku for sku in wanted if sku in found and found[sku] == active],
        unknown=[sku for sku in wanted if sku not in found],
    )
