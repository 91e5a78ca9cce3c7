"""What serving needs of the catalog, as arrays aligned with the active model's items.

Ranking and the campaigns' rules filter thousands of candidates per request by stock, category,
brand and price. Reading those from the database per request cost more than all the scoring, so
each process keeps them as arrays, re-read every ``PZ_CATALOG_REFRESH_SECONDS`` (one query of a
few columns). The products a list finally shows are always read from the database, active and
(when asked) in stock: a product deactivated a second ago is never shown, at worst the list is
one item shorter until the next refresh.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from personalization.model_store import LoadedModel
from personalization.models import Product


@dataclass(frozen=True)
class CatalogSnapshot:
    version: tuple[int, int]  # the model version and revision it was taken for
    active: np.ndarray  # bool per item row
    in_stock: np.ndarray
    prices: np.ndarray  # float64
    brands: list[str]
    categories: list[str]  # paths, "" for none
    taken_at: float

    def category_mask(self, path: str) -> np.ndarray:
        categories = np.asarray(self.categories, dtype=str)
        return (categories == path) | np.char.startswith(categories, path + " > ")


_lock = threading.Lock()


def _take(model: LoadedModel) -> CatalogSnapshot:
    n = model.n_items
    active, in_stock = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    prices = np.full(n, np.nan)
    brands, categories = [""] * n, [""] * n
    rows = Product.objects.order_by().values_list("pk", "is_active", "in_stock", "price", "brand", "category__path")
    for pk, is_active, stocked, price, brand, category in rows.iterator(chunk_size=10_000):
        row = model.row_of_product.get(pk)
        if row is None:
            continue  # added since the training: recommended from the next one on
        active[row], in_stock[row], prices[row] = is_active, stocked, float(price)
        brands[row], categories[row] = brand or "", category or ""
    return CatalogSnapshot(
        (model.version_id, model.revision), active, in_stock, prices, brands, categories, time.monotonic()
    )


def catalog_snapshot(model: LoadedModel) -> CatalogSnapshot:
    """The snapshot of the catalog for this loaded model (kept on it), re-read when it is older
    than the refresh period. Kept on the model object, not by version number: a model loaded
    again (another revision, another database in tests) never sees another's snapshot."""
    fresh = time.monotonic() - settings.PZ_CATALOG_REFRESH_SECONDS
    snapshot: CatalogSnapshot | None = model.memo.get("catalog")
    if snapshot is not None and snapshot.taken_at >= fresh:
        return snapshot
    with _lock:
        snapshot = model.memo.get("catalog")
        if snapshot is None or snapshot.taken_at < fresh:
            snapshot = model.memo["catalog"] = _take(model)
        return snapshot
