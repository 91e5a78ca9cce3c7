"""A serving process's catalog keeper (``keep_fresh``): a thread of its own reads the catalog, its
changes and in full, so that no request does. It reads through a connection of its own, so it sees
committed rows only: these tests commit (and so run on PostgreSQL only)."""

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.cache import cache

from personalization import catalog_snapshot as snapshots
from personalization import model_store
from personalization.catalog_input import ProductIn
from personalization.catalog_snapshot import catalog_snapshot, keep_fresh, stop_keeping_fresh
from personalization.model_store import ACTIVE_KEY, LoadedModel, active_model
from personalization.models import Product
from personalization.services import product_bulk_upsert
from tests.conftest import Commit
from tests.personalization.history import build_shop, train
from tests.personalization.test_catalog_snapshot import name_of

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_with_a_keeper_thread_requests_never_read_the_catalog_and_still_see_its_changes(
    commit: Commit, settings, django_assert_num_queries
) -> None:
    build_shop(4)
    train(commit)
    model = active_model()
    assert model is not None
    catalog_snapshot(model)
    settings.PZ_CATALOG_REFRESH_SECONDS = 0.5
    keep_fresh()
    try:
        product_bulk_upsert(products=[ProductIn(sku="K1", name="Renamed pan", price=Decimal("12.50"))])
        Product.objects.filter(sku="G1").update(in_stock=False)  # raw: for the keeper's full read
        with django_assert_num_queries(0):  # every read is due (PZ_CATALOG_CHANGES_SECONDS is 0 here)
            assert _eventually(lambda: name_of(model, "K1") == "Renamed pan")
            assert _eventually(lambda: not catalog_snapshot(model).in_stock[model.row_of_sku["G1"]])
    finally:
        stop_keeping_fresh()
    Product.objects.filter(sku="K2").update(name="Read by the request")
    settings.PZ_CATALOG_REFRESH_SECONDS = 0.0
    assert name_of(model, "K2") == "Read by the request"  # no keeper: the request reads again


def test_with_a_keeper_thread_a_new_version_comes_to_requests_with_its_catalog_read(
    commit: Commit, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries
) -> None:
    build_shop(3)
    first = train(commit)
    model = active_model()
    assert model is not None and model.version_id == first.pk
    catalog_snapshot(model)
    # An activation as a serving process sees it: another process (a Celery worker) sets the
    # pointer in the cache; this one is not told.
    monkeypatch.setattr(model_store, "active_pointer_refresh", lambda pointer: cache.set(ACTIVE_KEY, pointer, None))
    take = snapshots._take

    def slow_take(model: LoadedModel) -> snapshots.CatalogSnapshot:
        time.sleep(0.3)  # a catalog that takes long to read: a request polling meanwhile would see it missing
        return take(model)

    monkeypatch.setattr(snapshots, "_take", slow_take)
    keep_fresh()
    try:
        second = train(commit)
        assert second.pk != first.pk and second.status == "active"
        seen: list[int] = []

        def switched() -> bool:
            current = active_model()
            assert current is not None
            if current.version_id == second.pk:
                seen.append(len(current.memo))
            return bool(seen)

        with django_assert_num_queries(0):  # the request thread neither loads it nor reads its catalog
            assert _eventually(switched)
        assert seen == [1]  # the catalog was read before the version was given to a request
    finally:
        stop_keeping_fresh()


def test_a_new_version_is_given_to_requests_only_once_prepared(commit: Commit) -> None:
    build_shop(2)
    first = train(commit)
    model_store.forget_loaded_model()
    during: list[object] = []
    loaded = model_store.active_model_checked(prepare=lambda new: during.append((new.version_id, active_model())))
    assert loaded is not None and loaded.version_id == first.pk
    assert during == [(first.pk, None)]  # while it was prepared, requests still had the one before
    assert active_model() is loaded


def test_the_keeper_checks_the_active_version_as_often_as_pz_model_check_seconds_says(
    commit: Commit, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_shop(2)
    first = train(commit)
    assert active_model() is not None
    monkeypatch.setattr(model_store, "active_pointer_refresh", lambda pointer: cache.set(ACTIVE_KEY, pointer, None))
    settings.PZ_MODEL_CHECK_SECONDS = 3600.0  # the catalog is still read at once (0 s): the keeper runs often
    keep_fresh()
    try:
        second = train(commit)
        time.sleep(0.5)  # ten rounds of the keeper
        current = active_model()
        assert current is not None and current.version_id == first.pk != second.pk  # not checked yet
        settings.PZ_MODEL_CHECK_SECONDS = 0.0
        assert _eventually(lambda: getattr(active_model(), "version_id", None) == second.pk)
    finally:
        stop_keeping_fresh()
