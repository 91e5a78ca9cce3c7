import csv
import gzip
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from personalization.models import Category, Product
from tests.conftest import write_online_retail
from tracking.models import Customer, Order, OrderLine

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

# One row per rule of personalization.online_retail, with the outcome in the comment.
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.00,17850.0,United Kingdom",  # non-product code
    "536366,85123a,WHITE HANGING HEART T-LIGHT HOLDER,2,2010-12-01 08:28:00,2.95,,United Kingdom",  # guest; same SKU
    "536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER,1,2010-12-01 08:29:00,2.55,,United Kingdom",  # later timestamp
    "536367,22633,HAND WARMER UNION JACK,3,2011-06-15 09:00:00,2.10,12583,France",  # BST: 08:00 UTC
    "536367,22633,HAND WARMER UNION JACK,1,2011-06-15 09:00:00,2.10,12583,France",
    "536368,21777,,-10,2010-12-01 09:00:00,0,,United Kingdom",  # no price: a stock adjustment
    "536369,21778,damaged,-5,2010-12-01 09:00:00,1.00,,United Kingdom",  # negative quantity, not a cancellation
    "C536379,71053,WHITE METAL LANTERN,-2,2010-12-02 10:00:00,3.39,17850,United Kingdom",  # a cancellation
    "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom",  # non-product code
    "536370,DCGSSGIRL,GIRLS PARTY BAG,1,2011-12-09 12:00:00,3.29,12583,EIRE",
]


def load(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("load_online_retail", str(path), "--no-progress", *args, stdout=out)
    return out.getvalue()


def state() -> tuple[object, ...]:
    return (
        list(Product.objects.order_by("sku").values_list("sku", "name", "price", "category__path", "updated_at")),
        list(Customer.objects.order_by("user_id").values_list("user_id", "country", "first_seen_at", "updated_at")),
        list(Order.objects.order_by("order_id").values_list("order_id", "status", "revenue", "placed_at")),
        OrderLine.objects.count(),
        Category.objects.count(),
    )


def test_rules_give_exact_products_customers_and_orders(tmp_path: Path) -> None:
    output = load(write_online_retail(tmp_path / "retail.csv.gz", ROWS))

    products = {p.sku: p for p in Product.objects.select_related("category")}
    assert sorted(products) == ["22633", "71053", "85123A", "DCGSSGIRL"]
    holder = products["85123A"]
    assert (holder.name, holder.price, holder.currency, holder.url) == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
        Decimal("2.55"),  # the most frequent unit price (2.55 twice, 2.95 once)
        "GBP",
        "/shop/p/85123A/",
    )
    assert holder.category is not None and holder.category.path == "Home Decor > Candles & Holders"
    assert products["71053"].category.path == "Home Decor > Lights & Lanterns"  # type: ignore[union-attr]

    customers = {c.user_id: c for c in Customer.objects.all()}
    assert sorted(customers) == ["12583", "17850"]
    assert customers["17850"].country == "GB"
    assert customers["17850"].first_seen_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert customers["12583"].country == "FR"  # two lines from France, one from EIRE
    assert customers["12583"].first_seen_at == datetime(2011, 6, 15, 8, 0, tzinfo=UTC)

    orders = {o.order_id: o for o in Order.objects.select_related("customer")}
    assert sorted(orders) == ["536365", "536366", "536367", "536370", "C536379"]
    assert (orders["536365"].status, orders["536365"].revenue, orders["536365"].customer) == (
        "completed",
        Decimal("35.64"),
        customers["17850"],
    )
    assert orders["536366"].customer is None
    assert orders["536366"].placed_at == datetime(2010, 12, 1, 8, 28, tzinfo=UTC)  # the earliest of its two times
    assert orders["536366"].revenue == Decimal("8.45")
    assert orders["536367"].placed_at == datetime(2011, 6, 15, 8, 0, tzinfo=UTC)
    assert (orders["C536379"].status, orders["C536379"].revenue) == ("cancelled", Decimal("6.78"))
    assert list(orders["C536379"].lines.values_list("sku", "quantity")) == [("71053", 2)]
    assert list(orders["536366"].lines.values_list("position", "sku", "quantity", "unit_price")) == [
        (1, "85123A", 2, Decimal("2.95")),
        (2, "85123A", 1, Decimal("2.55")),
    ]
    assert OrderLine.objects.filter(product__isnull=True).count() == 0
    assert all(o.origin == "import" for o in orders.values())

    assert "Rows read: 12\n" in output
    assert "  loaded: 8\n" in output
    assert "skipped, non product code: 2" in output
    assert "skipped, no price: 1" in output
    assert "skipped, negative quantity: 1" in output
    assert "non-product codes: POST (1), B (1)" in output
    assert "Orders: 5 (4 completed, 1 cancelled); 5 created with 8 lines, 0 already present" in output


def test_loading_twice_changes_nothing(tmp_path: Path) -> None:
    path = write_online_retail(tmp_path / "retail.csv.gz", ROWS)
    load(path)
    before = state()
    output = load(path)
    assert state() == before
    assert "Products: 4 (0 created, 0 updated, 4 unchanged)" in output
    assert "Customers: 2 (0 created, 0 updated, 2 unchanged)" in output
    assert "0 created with 0 lines, 5 already present" in output


def test_since_and_until_select_whole_invoices(tmp_path: Path) -> None:
    output = load(
        write_online_retail(tmp_path / "retail.csv.gz", ROWS), "--since", "2011-01-01", "--until", "2011-12-09"
    )
    assert list(Order.objects.values_list("order_id", flat=True)) == ["536367"]  # 536370 is on the --until day
    assert list(Product.objects.values_list("sku", flat=True)) == ["22633"]
    assert list(Customer.objects.values_list("user_id", flat=True)) == ["12583"]
    assert "outside --since/--until: 6" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2011-12-01", "--until", "2011-01-01"], "--since must be before --until"),
        (["--since", "yesterday"], "argument --since: 'yesterday' is not a date like 2011-09-01"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    path = write_online_retail(tmp_path / "retail.csv.gz", ROWS)
    with pytest.raises(CommandError, match=message):
        load(path, *args)
    assert Order.objects.count() == 0


def test_missing_or_wrong_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        load(tmp_path / "nope.csv.gz")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CommandError, match="expected the columns InvoiceNo, StockCode"):
        load(wrong)
    assert Product.objects.count() == 0


def _expected_from(rows: list[list[str]]) -> dict[str, object]:
    """An independent, plain reading of the documented rules, to check the loader against."""
    product_code = re.compile(r"^(\d{5}[A-Z]{0,2}|DCGS[0-9A-Z]+)$")
    orders: dict[str, str] = {}
    revenue: defaultdict[str, Decimal] = defaultdict(Decimal)
    lines = 0
    skus, customers = set(), set()
    for invoice, code, description, quantity, _, price, customer, _ in rows:
        cancelled = invoice.startswith("C")
        if not product_code.match(code.upper()) or Decimal(price) <= 0 or not description.strip():
            continue
        if (int(quantity) <= 0) != cancelled:
            continue
        orders[invoice] = "cancelled" if cancelled else "completed"
        revenue[orders[invoice]] += abs(int(quantity)) * Decimal(price)
        lines += 1
        skus.add(code.upper())
        if customer:
            customers.add(customer.removesuffix(".0"))
    return {"orders": orders, "revenue": dict(revenue), "lines": lines, "skus": skus, "customers": customers}


def test_a_slice_of_the_real_file(tmp_path: Path, online_retail_path: Path) -> None:
    # The first 6,000 lines of December 2010: 300+ invoices, cancellations, postage, adjustments.
    with gzip.open(online_retail_path, "rt", encoding="utf-8", newline="") as handle:
        raw = [next(handle) for _ in range(6001)]
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        out.writelines(raw)
    expected = _expected_from(list(csv.reader(raw[1:])))

    load(path)
    stored = dict(Order.objects.values_list("order_id", "status"))
    assert stored == expected["orders"]
    assert "cancelled" in stored.values()
    assert OrderLine.objects.count() == expected["lines"]
    assert set(Product.objects.values_list("sku", flat=True)) == expected["skus"]
    assert set(Customer.objects.values_list("user_id", flat=True)) == expected["customers"]
    for status, total in expected["revenue"].items():  # type: ignore[attr-defined]
        assert Order.objects.filter(status=status).aggregate(total=Sum("revenue"))["total"] == total.quantize(
            Decimal("0.01")
        )
    assert Product.objects.filter(category__isnull=True).count() == 0

    before = state()
    load(path)
    assert state() == before
