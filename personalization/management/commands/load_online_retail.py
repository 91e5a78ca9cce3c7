"""``python manage.py load_online_retail PATH [--since DATE] [--until DATE] [--consent-basis import|none]``.

Loads UCI Online Retail: products (with a category derived from the description), customers,
and every invoice as an order with its lines. The rules are in ``personalization.online_retail``;
the category method in ``personalization.categorize``. Running it twice changes nothing.

Consent: the data set's customers never chose anything here, and analytics and personalization
are opt-in, so nothing would learn from their orders. ``--consent-basis import`` (the default)
records, for each customer who has made no choice, a grant of ``analytics`` and
``personalization`` with source "import": the operator asserts the history was collected with
that consent. It never overrides a choice or lifts an erasure, and never grants ``marketing``.
``--consent-basis none`` records nothing.
"""

import time
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.arguments import iso_date
from consent.services import consent_bulk_import
from consent.subjects import Subject
from personalization.catalog_input import ProductIn
from personalization.categorize import category_for_description
from personalization.online_retail import OnlineRetailError, RetailData, RetailInvoice, read_online_retail
from personalization.services import product_bulk_upsert
from tracking.models import Order
from tracking.services import CustomerIn, OrderIn, OrderLineIn, customer_bulk_upsert, order_bulk_record

T = TypeVar("T")
IMPORTED_PURPOSES = ("analytics", "personalization")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _order_from_invoice(invoice: RetailInvoice) -> OrderIn:
    return OrderIn(
        order_id=invoice.invoice_no,
        placed_at=invoice.placed_at,
        status=Order.Status.CANCELLED if invoice.cancelled else Order.Status.COMPLETED,
        user_id=invoice.customer_id,
        currency="GBP",
        properties={"country": invoice.country},
        lines=[OrderLineIn(line.sku, line.name, line.quantity, line.unit_price) for line in invoice.lines],
    )


class Command(BaseCommand):
    help = "Load UCI Online Retail (products, customers, orders) from its CSV (optionally gzipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="online_retail.csv or online_retail.csv.gz")
        parser.add_argument("--since", type=iso_date, help="First day to load (inclusive, YYYY-MM-DD).")
        parser.add_argument("--until", type=iso_date, help="Day to stop before (exclusive, YYYY-MM-DD).")
        parser.add_argument(
            "--product-url-template",
            default="/shop/p/{sku}/",
            help="URL given to each product; {sku} is replaced (default: the demo shop's product page).",
        )
        parser.add_argument("--batch-size", type=int, default=2000, help="Orders stored per transaction.")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw progress bars.")
        parser.add_argument(
            "--consent-basis",
            choices=["import", "none"],
            default="import",
            help="import (default): grant analytics and personalization (source import) to each customer who "
            "has made no choice, asserting the history was collected with that consent; none: record nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist. The data set lives in ../shared/datasets/online_retail/.")
        if options["since"] and options["until"] and options["since"] >= options["until"]:
            raise CommandError("--since must be before --until.")
        started = time.monotonic()
        show = not options["no_progress"]

        with tqdm(desc="Reading rows", unit=" rows", disable=not show) as bar:
            try:
                data = read_online_retail(path, since=options["since"], until=options["until"], on_row=bar.update)
            except (OnlineRetailError, ValueError) as exc:
                raise CommandError(str(exc)) from exc

        products = self._store_products(data, options["product_url_template"])
        customers = customer_bulk_upsert(
            customers=[CustomerIn(c.user_id, c.country, c.first_seen_at) for c in data.customers]
        )
        created = present = lines = 0
        with tqdm(total=len(data.invoices), desc="Storing orders", unit=" orders", disable=not show) as bar:
            for chunk in _chunks(data.invoices, options["batch_size"]):
                result = order_bulk_record(orders=[_order_from_invoice(i) for i in chunk], origin=Order.Origin.IMPORT)
                created, present, lines = (
                    created + result.created,
                    present + result.already_present,
                    lines + result.lines_created,
                )
                bar.update(len(chunk))

        cancelled = sum(1 for invoice in data.invoices if invoice.cancelled)
        self._report(data, products, customers, created, present, lines, cancelled, time.monotonic() - started)
        if options["consent_basis"] == "import":
            subjects = [Subject(user_id=customer.user_id) for customer in data.customers]
            for purpose in IMPORTED_PURPOSES:
                imported = consent_bulk_import(subjects=subjects, purpose=purpose)
                self.stdout.write(
                    f"Consent ({purpose}, source import): {imported.recorded:,} granted now, "
                    f"{imported.already_chosen:,} had chosen, {imported.suppressed:,} erased"
                )

    def _store_products(self, data: RetailData, url_template: str) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        rows = [
            ProductIn(
                sku=product.sku,
                name=product.name,
                price=product.price,
                currency="GBP",
                category=category_for_description(product.name),
                url=url_template.format(sku=product.sku),
            )
            for product in data.products
        ]
        for chunk in _chunks(rows, 1000):
            result = product_bulk_upsert(products=chunk)
            counts["created"] += len(result.created)
            counts["updated"] += len(result.updated)
            counts["unchanged"] += len(result.unchanged)
        return counts

    def _report(
        self,
        data: RetailData,
        products: dict[str, int],
        customers: Any,
        created: int,
        present: int,
        lines: int,
        cancelled: int,
        seconds: float,
    ) -> None:
        accepted = sum(len(invoice.lines) for invoice in data.invoices)
        write = self.stdout.write
        write(f"Rows read: {data.rows_read:,}")
        for reason, count in data.skipped.most_common():
            write(f"  skipped, {reason.replace('_', ' ')}: {count:,}")
        if data.skipped_codes:
            codes = ", ".join(f"{code} ({count:,})" for code, count in data.skipped_codes.most_common(12))
            write(f"    non-product codes: {codes}")
        if data.rows_outside_window:
            write(f"  outside --since/--until: {data.rows_outside_window:,}")
        write(f"  loaded: {accepted:,}")
        write(
            f"Products: {len(data.products):,} ({products['created']:,} created, "
            f"{products['updated']:,} updated, {products['unchanged']:,} unchanged)"
        )
        write(
            f"Customers: {len(data.customers):,} ({customers.created:,} created, "
            f"{customers.updated:,} updated, {customers.unchanged:,} unchanged)"
        )
        if data.unmapped_countries:
            names = ", ".join(f"{name} ({n})" for name, n in data.unmapped_countries.most_common())
            write(f"  customers whose country has no ISO code (stored blank): {names}")
        write(
            f"Orders: {len(data.invoices):,} ({len(data.invoices) - cancelled:,} completed, {cancelled:,} cancelled); "
            f"{created:,} created with {lines:,} lines, {present:,} already present"
        )
        write(self.style.SUCCESS(f"Done in {seconds:.1f} s."))
