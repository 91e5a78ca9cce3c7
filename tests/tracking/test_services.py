from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import ProductFactory
from tracking.models import Customer, Order, OrderLine, Source
from tracking.selectors import source_for_secret_key
from tracking.services import (
    CustomerIn,
    OrderIn,
    OrderLineIn,
    customer_bulk_upsert,
    order_bulk_record,
    order_record,
    secret_key_digest,
    source_create,
    source_rotate_secret_key,
)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

WHEN = datetime(2011, 5, 3, 10, 15, tzinfo=UTC)


def test_source_keys_are_distinct_and_only_the_digest_of_the_secret_is_stored() -> None:
    keys = source_create(name="Web shop")
    assert keys.write_key.startswith("pzw_") and len(keys.write_key) == 36
    assert keys.secret_key.startswith("pzs_") and len(keys.secret_key) == 47
    stored = Source.objects.get(name="Web shop")
    assert stored.write_key == keys.write_key
    assert stored.secret_key_digest == secret_key_digest(keys.secret_key) != keys.secret_key
    assert keys.secret_key not in str(Source.objects.values().get())
    assert source_for_secret_key(digest=secret_key_digest(keys.secret_key)) == stored


def test_rotating_the_secret_key_keeps_the_write_key() -> None:
    keys = source_create(name="App")
    new_secret = source_rotate_secret_key(source=keys.source)
    assert new_secret != keys.secret_key
    assert source_for_secret_key(digest=secret_key_digest(keys.secret_key)) is None
    assert source_for_secret_key(digest=secret_key_digest(new_secret)) == keys.source
    assert Source.objects.get().write_key == keys.write_key


def test_customer_upsert_keeps_the_earliest_first_sighting() -> None:
    early, late = datetime(2011, 1, 1, tzinfo=UTC), datetime(2011, 6, 1, tzinfo=UTC)
    first = customer_bulk_upsert(customers=[CustomerIn("1", "GB", late), CustomerIn("2", "", None)])
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    second = customer_bulk_upsert(customers=[CustomerIn("1", "GB", early), CustomerIn("2", "", None)])
    assert (second.created, second.updated, second.unchanged) == (0, 1, 1)
    third = customer_bulk_upsert(customers=[CustomerIn("1", "GB", late)])
    assert (third.created, third.updated, third.unchanged) == (0, 0, 1)
    assert Customer.objects.get(user_id="1").first_seen_at == early


def _order(order_id: str, **changes: object) -> OrderIn:
    values: dict[str, object] = {
        "order_id": order_id,
        "placed_at": WHEN,
        "user_id": "12347",
        "lines": [OrderLineIn("A1", "Mug", 2, Decimal("1.25")), OrderLineIn("B2", "Gone product", 1, Decimal("3.10"))],
    }
    values.update(changes)
    return OrderIn(**values)  # type: ignore[arg-type]


def test_orders_are_stored_once_with_lines_products_and_customers() -> None:
    mug = ProductFactory.create(sku="A1")
    result = order_bulk_record(orders=[_order("536365"), _order("C536379", status="cancelled")], origin="import")
    assert (result.created, result.already_present, result.lines_created) == (2, 0, 4)
    order = Order.objects.get(order_id="536365")
    assert (order.revenue, order.currency, order.status, order.origin) == (
        Decimal("5.60"),
        "GBP",
        "completed",
        "import",
    )
    assert order.customer == Customer.objects.get(user_id="12347")
    lines = list(OrderLine.objects.filter(order=order).values_list("position", "sku", "product_id", "quantity"))
    assert lines == [(1, "A1", mug.pk, 2), (2, "B2", None, 1)]
    assert Order.objects.get(order_id="C536379").status == "cancelled"

    again = order_bulk_record(orders=[_order("536365"), _order("536366")], origin="import")
    assert (again.created, again.already_present, again.lines_created) == (1, 1, 2)
    assert Order.objects.count() == 3
    assert OrderLine.objects.count() == 6


def test_guest_orders_have_no_customer() -> None:
    order = order_record(order=_order("g-1", user_id=None, anonymous_id="anon-42"), origin="shop")
    assert order.customer is None
    assert order.anonymous_id == "anon-42"
    assert Customer.objects.count() == 0
