"""Reads of the catalog."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from personalization.catalog_input import CATEGORY_SEPARATOR
from personalization.models import Category, ModelVersion, Product
from tracking.selectors import latest_order_time, product_order_counts


def product_list(
    *,
    is_active: bool | None = None,
    category_path: str | None = None,
    updated_since: datetime | None = None,
) -> QuerySet[Product]:
    """Products with their category; ``category_path`` includes the whole subtree."""
    products = Product.objects.select_related("category")
    if is_active is not None:
        products = products.filter(is_active=is_active)
    if category_path:
        products = products.filter(
            Q(category__path=category_path) | Q(category__path__startswith=category_path + CATEGORY_SEPARATOR)
        )
    if updated_since is not None:
        products = products.filter(updated_at__gte=updated_since)
    return products


def product_get(*, sku: str) -> Product | None:
    return Product.objects.select_related("category").filter(sku=sku).first()


def product_ids_by_sku(skus: Iterable[str]) -> dict[str, int]:
    wanted = list(set(skus))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):  # stay under SQLite's limit of bound parameters
        found.update(Product.objects.filter(sku__in=wanted[start : start + 5000]).values_list("sku", "id"))
    return found


def products_by_ids(ids: Iterable[int]) -> dict[int, Product]:
    return Product.objects.select_related("category").in_bulk(list(ids))


def category_list() -> QuerySet[Category]:
    return Category.objects.select_related("parent").order_by("path")


def category_get_by_slug(*, slug: str) -> Category | None:
    return Category.objects.select_related("parent").filter(slug=slug).first()


def categories_with_active_product_counts(*, depth: int | None = None) -> list[Category]:
    """Categories (optionally of one depth) with ``active_products`` counted over their whole subtree."""
    categories = list(Category.objects.order_by("path"))
    direct = dict(
        Product.objects.filter(is_active=True, category__isnull=False)
        .values("category_id")
        .annotate(n=Count("id"))
        .values_list("category_id", "n")
    )
    by_path = {category.path: category for category in categories}
    totals = dict.fromkeys(by_path, 0)
    for category in categories:
        count = direct.get(category.pk, 0)
        path = category.path
        while path:
            totals[path] += count
            path = path.rpartition(CATEGORY_SEPARATOR)[0]
    for category in categories:
        category.active_products = totals[category.path]  # type: ignore[attr-defined]
    return [c for c in categories if depth is None or c.depth == depth]


def bestsellers(*, limit: int, days: int = 30) -> list[Product]:
    """Active, in-stock products in the most orders over the last ``days`` days of stored orders.

    The window ends at the newest stored order rather than today, so a historical data set
    (UCI Online Retail ends in December 2011) still has bestsellers.
    """
    latest = latest_order_time()
    if latest is None:
        return []
    ranked = product_order_counts(since=latest - timedelta(days=days), limit=limit * 3)
    products = Product.objects.select_related("category").filter(
        pk__in=[pk for pk, _ in ranked], is_active=True, in_stock=True
    )
    by_pk = {product.pk: product for product in products}
    return [by_pk[pk] for pk, _ in ranked if pk in by_pk][:limit]


SHOP_SORTS = {
    "name": ("name", "sku"),
    "price": ("price", "sku"),
    "-price": ("-price", "sku"),
    "new": ("-created_at", "sku"),
}


def shop_products(
    *, category: Category | None = None, query: str = "", sort: str = "popular"
) -> QuerySet[Product] | list[Product]:
    """What a shopper can browse: active products, optionally in a category subtree or matching a search.

    ``popular`` (the default, and any unknown sort) orders by how many orders each product was in.
    """
    products = product_list(is_active=True, category_path=category.path if category else None)
    for word in query.split()[:8]:
        products = products.filter(Q(name__icontains=word) | Q(sku__iexact=word) | Q(brand__icontains=word))
    if sort in SHOP_SORTS:
        return products.order_by(*SHOP_SORTS[sort])
    popularity = product_popularity()
    return sorted(products, key=lambda product: (-popularity.get(product.pk, 0), product.name))


def product_popularity() -> dict[int, int]:
    """``{product_id: completed orders it was in}``, cached for ten minutes (it changes slowly)."""
    popularity: dict[int, int] | None = cache.get("catalog:popularity")
    if popularity is None:
        popularity = dict(product_order_counts(limit=None))
        cache.set("catalog:popularity", popularity, 600)
    return popularity


def products_by_skus(skus: Iterable[str]) -> dict[str, Product]:
    return {p.sku: p for p in Product.objects.select_related("category").filter(sku__in=list(skus))}


# --- model versions --------------------------------------------------------------------------------


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def model_versions_on_disk() -> QuerySet[ModelVersion]:
    """Versions whose artifacts are (meant to be) on disk, newest first."""
    return ModelVersion.objects.exclude(artifact_path="").exclude(
        status__in=[ModelVersion.Status.DISCARDED, ModelVersion.Status.TRAINING, ModelVersion.Status.FAILED]
    )
