"""What a serving process knows of the catalog (``catalog_snapshot``): changes made through the
services are seen at the next read of the changes, late commits within the margin too, and the
full read every ``PZ_CATALOG_REFRESH_SECONDS`` catches everything else."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from personalization.catalog_input import ProductIn
from personalization.catalog_snapshot import CHANGES_MARGIN, catalog_snapshot
from personalization.model_store import LoadedModel, active_model
from personalization.models import Product
from personalization.services import product_bulk_set_active, product_bulk_upsert
from personalization.serving.requests import product_cards
from tests.conftest import Commit
from tests.personalization.history import build_shop, train

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def model(commit: Commit) -> LoadedModel:
    build_shop(4)
    train(commit)
    Product.objects.update(updated_at=timezone.now() - timedelta(hours=1))  # the shop's catalog, as of before
    loaded = active_model()
    assert loaded is not None
    return loaded


def name_of(model: LoadedModel, sku: str) -> str:
    card = catalog_snapshot(model).cards[model.row_of_sku[sku]]
    assert card is not None
    return card.name


def test_changes_through_the_services_are_shown_from_the_next_read_of_the_changes(model: LoadedModel, settings) -> None:
    assert set(product_cards(skus=["K1", "K2"], in_stock_only=True)) == {"K1", "K2"}
    settings.PZ_CATALOG_CHANGES_SECONDS = 3600.0
    product_bulk_upsert(products=[ProductIn(sku="K1", name="Renamed pan", price=Decimal("12.50"))])
    product_bulk_set_active(skus=["K2"], active=False)
    assert name_of(model, "K1") == "Kitchen thing K1"  # not read yet: at most a second late
    settings.PZ_CATALOG_CHANGES_SECONDS = 0.0
    assert name_of(model, "K1") == "Renamed pan"
    assert product_cards(skus=["K1"])["K1"].price == Decimal("12.50")
    assert set(product_cards(skus=["K1", "K2"])) == {"K1"}
    snapshot = catalog_snapshot(model)
    assert not snapshot.active[model.row_of_sku["K2"]] and snapshot.prices[model.row_of_sku["K1"]] == 12.5


def test_a_write_committed_after_a_read_that_began_later_is_read_within_the_margin(model: LoadedModel) -> None:
    began = catalog_snapshot(model).read_from
    Product.objects.filter(sku="K3").update(name="Late", updated_at=began - CHANGES_MARGIN + timedelta(seconds=1))
    Product.objects.filter(sku="K4").update(name="Too late", updated_at=began - CHANGES_MARGIN - timedelta(seconds=1))
    assert name_of(model, "K3") == "Late"
    assert name_of(model, "K4") == "Kitchen thing K4"  # beyond the margin: left to the full read


def test_the_full_read_catches_what_bypassed_updated_at(model: LoadedModel, settings) -> None:
    catalog_snapshot(model)
    Product.objects.filter(sku="G1").update(in_stock=False)  # raw: updated_at untouched
    assert "G1" in product_cards(skus=["G1"], in_stock_only=True)
    settings.PZ_CATALOG_REFRESH_SECONDS = 0.0
    assert product_cards(skus=["G1"], in_stock_only=True) == {}
    assert "G1" in product_cards(skus=["G1"])


def test_a_product_added_since_the_training_is_read_from_the_database(model: LoadedModel) -> None:
    product_bulk_upsert(products=[ProductIn(sku="NEW1", name="New thing", price=Decimal("3.00"))])
    assert "NEW1" not in model.row_of_sku
    card = product_cards(skus=["NEW1", "K1"])["NEW1"]
    assert (card.name, card.price) == ("New thing", Decimal("3.00"))
    product_bulk_set_active(skus=["NEW1"], active=False)
    assert product_cards(skus=["NEW1"]) == {}
