"""What serving needs of the catalog, as arrays aligned with the active model's items.

Ranking and the campaigns' rules filter thousands of candidates per request by stock, category,
brand and price, and a list shows a few products' cards (name, link, image, price). Reading those
from the database per request cost more than all the scoring, so each process keeps them here:

- in full, re-read every ``PZ_CATALOG_REFRESH_SECONDS`` (one query of a few columns);
- and at most every ``PZ_CATALOG_CHANGES_SECONDS`` (a second), the products changed since the
  previous read: those whose ``updated_at`` is later than the moment it began, less a margin for
  the writes stamped before it that committed after it (``CHANGES_MARGIN``).

Every write of the catalog sets ``updated_at`` (the model's ``auto_now``, and the bulk services
set it), so a product deactivated, sold out or renamed is shown so no more than a second later.
A write that bypasses it (raw SQL) or a transaction that commits more than ``CHANGES_MARGIN``
after it stamped its rows waits for the next full read.

A serving process reads both in a thread of its own (``keep_fresh``, started by config/wsgi.py):
the full read takes tens of milliseconds of a 3,800-product catalog, and a request that made it
kept the requests behind it waiting past their latency budget. Without that thread (tests,
management commands, Celery tasks) the request that finds the snapshot due reads it, as before;
so does one that finds the thread has not brought it up to date for a whole refresh period.
"""

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from personalization.model_store import LoadedModel, active_model_checked, held_only, keep_checking
from personalization.models import Product

CHANGES_MARGIN = timedelta(seconds=5)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductCard:
    """What a slot shows of a product."""

    pk: int
    sku: str
    name: str
    url: str
    image_url: str
    price: Decimal
    currency: str
    category_path: str


CARD_FIELDS = ("pk", "sku", "name", "url", "image_url", "price", "currency", "category__path")
_FIELDS = (*CARD_FIELDS, "is_active", "in_stock", "brand")


@dataclass(frozen=True)
class CatalogSnapshot:
    version: tuple[int, int]  # the model version and revision it was taken for
    active: np.ndarray  # bool per item row
    in_stock: np.ndarray
    prices: np.ndarray  # float64
    brands: list[str]
    categories: list[str]  # paths, "" for none
    cards: list[ProductCard | None]  # None: no such product (any more)
    taken_at: float  # monotonic time of the full read
    checked_at: float  # monotonic time of the last read of the changes
    read_from: datetime  # the moment the last read (full or of the changes) began


_lock = threading.Lock()


def _applied(
    snapshot: CatalogSnapshot, model: LoadedModel, rows: Any, now: float, read_from: datetime
) -> CatalogSnapshot:
    """``snapshot`` with these product rows written over it (new arrays: readers keep theirs)."""
    active, in_stock, prices = snapshot.active.copy(), snapshot.in_stock.copy(), snapshot.prices.copy()
    brands, categories, cards = list(snapshot.brands), list(snapshot.categories), list(snapshot.cards)
    for pk, sku, name, url, image_url, price, currency, category, is_active, stocked, brand in rows:
        row = model.row_of_product.get(pk)
        if row is None:
            continue  # added since the training: recommended from the next one on
        active[row], in_stock[row], prices[row] = is_active, stocked, float(price)
        brands[row], categories[row] = brand or "", category or ""
        cards[row] = ProductCard(pk, sku, name, url, image_url, price, currency, category or "")
    return replace(
        snapshot,
        active=active,
        in_stock=in_stock,
        prices=prices,
        brands=brands,
        categories=categories,
        cards=cards,
        checked_at=now,
        read_from=read_from,
    )


def _take(model: LoadedModel) -> CatalogSnapshot:
    n = model.n_items
    now, read_from = time.monotonic(), timezone.now()
    empty = CatalogSnapshot(
        (model.version_id, model.revision),
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=bool),
        np.full(n, np.nan),
        [""] * n,
        [""] * n,
        [None] * n,
        now,
        now,
        read_from,
    )
    rows = Product.objects.order_by().values_list(*_FIELDS)
    return _applied(empty, model, rows.iterator(chunk_size=10_000), now, read_from)


def _changed(model: LoadedModel, snapshot: CatalogSnapshot) -> CatalogSnapshot:
    now, read_from = time.monotonic(), timezone.now()
    since = snapshot.read_from - CHANGES_MARGIN
    rows = Product.objects.order_by().filter(updated_at__gte=since).values_list(*_FIELDS)
    return _applied(snapshot, model, rows, now, read_from)


def catalog_snapshot(model: LoadedModel) -> CatalogSnapshot:
    """The snapshot of the catalog for this loaded model (kept on it), read again in full when it
    is older than the refresh period, and brought up to date with the changes every
    ``PZ_CATALOG_CHANGES_SECONDS``: by this process's ``keep_fresh`` thread if it runs, else here.
    Kept on the model object, not by version number: a model loaded again (another revision,
    another database in tests) never sees another's snapshot."""
    snapshot: CatalogSnapshot | None = model.memo.get("catalog")
    if snapshot is not None:
        now = time.monotonic()
        if (
            held_only.get()
            or _kept(snapshot, now)
            or (
                now - snapshot.taken_at < settings.PZ_CATALOG_REFRESH_SECONDS
                and now - snapshot.checked_at < settings.PZ_CATALOG_CHANGES_SECONDS
            )
        ):
            return snapshot
    return _brought_up_to_date(model)


def _brought_up_to_date(model: LoadedModel) -> CatalogSnapshot:
    """The model's snapshot, read in full or its changes read if either is due (one thread reads)."""
    with _lock:
        snapshot = model.memo.get("catalog")
        now = time.monotonic()
        if snapshot is None or now - snapshot.taken_at >= settings.PZ_CATALOG_REFRESH_SECONDS:
            snapshot = model.memo["catalog"] = _take(model)
        elif now - snapshot.checked_at >= settings.PZ_CATALOG_CHANGES_SECONDS:
            snapshot = model.memo["catalog"] = _changed(model, snapshot)
        return snapshot


class _Keeper(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="pz-catalog", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            # Each round does what is due: the check of the active version, every
            # PZ_MODEL_CHECK_SECONDS; the reads of the catalog, as ``_brought_up_to_date`` says.
            period = min(settings.PZ_CATALOG_CHANGES_SECONDS, settings.PZ_MODEL_CHECK_SECONDS)
            while not self.stopping.wait(max(period, 0.05)):
                try:
                    close_old_connections()
                    # A newly active version is loaded here, its catalog read, and only then served.
                    model = active_model_checked(prepare=_brought_up_to_date, when_due=True)
                    if model is not None:
                        _brought_up_to_date(model)
                except Exception:
                    logger.warning("could not read the catalog; serving the snapshot it has", exc_info=True)
        finally:
            connections.close_all()  # this thread's own


_keeper: _Keeper | None = None


def _kept(snapshot: CatalogSnapshot, now: float) -> bool:
    """Whether the keeper thread runs and has read the changes within a refresh period (a keeper
    stuck on the database longer than that leaves the reads to the requests)."""
    return (
        _keeper is not None and _keeper.is_alive() and now - snapshot.checked_at < settings.PZ_CATALOG_REFRESH_SECONDS
    )


def keep_fresh() -> None:
    """Read the catalog from a thread of this process's own from now on, every
    ``PZ_CATALOG_CHANGES_SECONDS``, so that no request waits for a read; the thread also checks
    which model version is active, and loads a new one with its catalog before requests get it.
    Started once per serving process, after ``warm_up``."""
    global _keeper
    with _lock:
        if _keeper is None or not _keeper.is_alive():
            _keeper = _Keeper()
            _keeper.start()
            keep_checking(_keeper)


def stop_keeping_fresh() -> None:
    """Stop the keeper thread (tests): requests read the catalog themselves again."""
    global _keeper
    with _lock:
        keeper, _keeper = _keeper, None
        keep_checking(None)
    if keeper is not None:
        keeper.stopping.set()
        keeper.join(timeout=10)
