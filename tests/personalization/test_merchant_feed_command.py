from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from personalization.models import Product
from tests.factories import ProductFactory

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "merchant_feed"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_merchant_feed", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["products.tsv", "products.rss.xml", "products.atom.xml"])
def test_feed_import_stores_good_items_and_is_idempotent(name: str) -> None:
    out, _ = run(str(FEEDS / name))
    created = Product.objects.count()
    assert created == 3
    assert f"{created} created, 0 updated, 0 unchanged" in out
    before = list(Product.objects.order_by("sku").values_list("sku", "price", "updated_at"))
    out, _ = run(str(FEEDS / name))
    assert "0 created, 0 updated, 3 unchanged" in out
    assert list(Product.objects.order_by("sku").values_list("sku", "price", "updated_at")) == before


def test_tsv_feed_maps_fields_and_reports_refused_items() -> None:
    out, err = run(str(FEEDS / "products.tsv"))
    assert "2 refused" in out
    assert "Item 3 (SKU BAD-PRICE-3) refused: price: 'abc' is not a price like '15.00 USD'" in err
    assert "Item 4 (SKU ?) refused: id: missing" in err
    assert not Product.objects.filter(sku="BAD-PRICE-3").exists()
    for product in Product.objects.select_related("category"):
        assert product.name and product.price >= Decimal("0") and len(product.currency) == 3


def test_dry_run_stores_nothing() -> None:
    out, _ = run(str(FEEDS / "products.rss.xml"), "--dry-run")
    assert out.startswith("Dry run, nothing stored. Would have: 3 created")
    assert Product.objects.count() == 0


def test_deactivate_missing_turns_off_products_absent_from_the_feed() -> None:
    ProductFactory.create(sku="OLD-1")
    out, _ = run(str(FEEDS / "products.atom.xml"), "--deactivate-missing")
    assert "1 deactivated (not in the feed)" in out
    assert Product.objects.get(sku="OLD-1").is_active is False
    assert Product.objects.filter(is_active=True).count() == 3


def test_hostile_xml_is_refused_and_nothing_is_stored() -> None:
    with pytest.raises(CommandError, match="entities or external references"):
        run(str(FEEDS / "hostile.xml"))
    assert Product.objects.count() == 0
