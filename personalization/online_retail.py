"""Reading UCI Online Retail into products, customers and invoices (pure: no Django imports).

Rules, applied to each row in this order (the first that matches decides):

1. ``non_product_code``: the stock code is not a product. Products have a code of five digits
   with an optional letter suffix (``85123A``), or a ``DCGS…`` code (items of the shop's web
   store); everything else is postage (``POST``, ``DOT``), carriage (``C2``), manual lines
   (``M``), discounts (``D``), samples (``S``), fees (``BANK CHARGES``, ``AMAZONFEE``,
   ``CRUK``), gift vouchers (``GIFT_0001_*``), bad-debt adjustments (``B``) or ``PADS``.
2. ``no_price``: a unit price of zero or less. These are stock adjustments written as invoice
   lines ("damaged", "check", "found", ...), not sales.
3. ``negative_quantity``: a quantity of zero or less on an invoice that is not a cancellation.
4. ``positive_cancellation``: a cancellation line (invoice ``C…``) that does not take anything back.
5. ``no_description``: no description (none remain after rule 2 in the real file).

Stock codes are compared upper-cased (``85123a`` and ``85123A`` are the same product).
An invoice whose number starts with ``C`` is a cancellation: it is kept, as a cancelled order
whose lines carry the quantities given back. Invoice dates are the shop's local time
(Europe/London) and are stored in UTC; an invoice whose lines carry two timestamps is dated by
the earliest. ``since`` (inclusive) and ``until`` (exclusive) select whole invoices by that date.

A product's name is its most frequent description and its price its most frequent unit price
(ties: the lower price), over the accepted rows of the window. A customer's country is the
most frequent country of their rows.
"""

import csv
import gzip
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

SHOP_TIME_ZONE = ZoneInfo("Europe/London")
PRODUCT_CODE = re.compile(r"^(\d{5}[A-Z]{0,2}|DCGS[0-9A-Z]+)$")
EXPECTED_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]

# The file's country names, as ISO 3166-1 alpha-2 codes. "Channel Islands" (Jersey and
# Guernsey have separate codes), "European Community" and "Unspecified" have none.
COUNTRY_CODES = {
    "Australia": "AU",
    "Austria": "AT",
    "Bahrain": "BH",
    "Belgium": "BE",
    "Brazil": "BR",
    "Canada": "CA",
    "Cyprus": "CY",
    "Czech Republic": "CZ",
    "Denmark": "DK",
    "EIRE": "IE",
    "Finland": "FI",
    "France": "FR",
    "Germany": "DE",
    "Greece": "GR",
    "Hong Kong": "HK",
    "Iceland": "IS",
    "Israel": "IL",
    "Italy": "IT",
    "Japan": "JP",
    "Lebanon": "LB",
    "Lithuania": "LT",
    "Malta": "MT",
    "Netherlands": "NL",
    "Norway": "NO",
    "Poland": "PL",
    "Portugal": "PT",
    "RSA": "ZA",
    "Saudi Arabia": "SA",
    "Singapore": "SG",
    "Spain": "ES",
    "Sweden": "SE",
    "Switzerland": "CH",
    "USA": "US",
    "United Arab Emirates": "AE",
    "United Kingdom": "GB",
}


class OnlineRetailError(Exception):
    """The file is not UCI Online Retail as expected."""


@dataclass(frozen=True)
class RetailLine:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass
class RetailInvoice:
    invoice_no: str
    placed_at: datetime
    cancelled: bool
    customer_id: str | None
    country: str
    lines: list[RetailLine] = field(default_factory=list)


@dataclass(frozen=True)
class RetailProduct:
    sku: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class RetailCustomer:
    user_id: str
    country: str
    first_seen_at: datetime


@dataclass
class RetailData:
    products: list[RetailProduct]
    customers: list[RetailCustomer]
    invoices: list[RetailInvoice]
    rows_read: int
    rows_outside_window: int
    skipped: Counter[str]
    skipped_codes: Counter[str]
    unmapped_countries: Counter[str]


def _local_to_utc(cache: dict[str, datetime], raw: str) -> datetime:
    parsed = cache.get(raw)
    if parsed is None:
        naive = datetime.fromisoformat(raw)
        parsed = naive.replace(tzinfo=SHOP_TIME_ZONE).astimezone(UTC)
        cache[raw] = parsed
    return parsed


def _customer_id(raw: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    return raw.removesuffix(".0")  # some exports write CustomerID as a float


def _skip_reason(code: str, description: str, quantity: int, price: Decimal, cancelled: bool) -> str | None:
    if not PRODUCT_CODE.match(code):
        return "non_product_code"
    if price <= 0:
        return "no_price"
    if quantity <= 0 and not cancelled:
        return "negative_quantity"
    if quantity >= 0 and cancelled:
        return "positive_cancellation"
    if not description:
        return "no_description"
    return None


def _most_common_price(prices: Counter[Decimal]) -> Decimal:
    return min(prices.items(), key=lambda item: (-item[1], item[0]))[0]


def read_online_retail(
    path: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    on_row: Callable[[int], object] | None = None,
) -> RetailData:
    """Read the whole file and apply the rules above. ``on_row(n)`` reports progress every 10,000 rows."""
    opener = gzip.open if path.suffix == ".gz" else open
    invoices: dict[str, RetailInvoice] = {}
    skipped: Counter[str] = Counter()
    skipped_codes: Counter[str] = Counter()
    times: dict[str, datetime] = {}
    rows_read = 0
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != EXPECTED_COLUMNS:
            raise OnlineRetailError(f"{path}: expected the columns {', '.join(EXPECTED_COLUMNS)}; found {header}")
        for row in reader:
            rows_read += 1
            if on_row is not None and rows_read % 10_000 == 0:
                on_row(10_000)
            invoice_no, raw_code, description, raw_quantity, raw_date, raw_price, raw_customer, country = row
            code = raw_code.strip().upper()
            quantity, price = int(raw_quantity), Decimal(raw_price)
            cancelled = invoice_no.startswith("C")
            reason = _skip_reason(code, description.strip(), quantity, price, cancelled)
            if reason is not None:
                skipped[reason] += 1
                if reason == "non_product_code":
                    skipped_codes[code] += 1
                continue
            placed_at = _local_to_utc(times, raw_date)
            invoice = invoices.get(invoice_no)
            if invoice is None:
                invoice = invoices[invoice_no] = RetailInvoice(
                    invoice_no, placed_at, cancelled, _customer_id(raw_customer), country.strip()
                )
            invoice.placed_at = min(invoice.placed_at, placed_at)
            invoice.lines.append(RetailLine(code, description.strip(), abs(quantity), price))
    if on_row is not None:
        on_row(rows_read % 10_000)

    in_window = [
        invoice
        for invoice in invoices.values()
        if (since is None or invoice.placed_at.astimezone(SHOP_TIME_ZONE).date() >= since)
        and (until is None or invoice.placed_at.astimezone(SHOP_TIME_ZONE).date() < until)
    ]
    rows_outside = sum(len(invoice.lines) for invoice in invoices.values()) - sum(len(i.lines) for i in in_window)
    in_window.sort(key=lambda invoice: (invoice.placed_at, invoice.invoice_no))
    return _aggregate(in_window, rows_read, rows_outside, skipped, skipped_codes)


def _aggregate(
    invoices: list[RetailInvoice],
    rows_read: int,
    rows_outside: int,
    skipped: Counter[str],
    skipped_codes: Counter[str],
) -> RetailData:
    names: defaultdict[str, Counter[str]] = defaultdict(Counter)
    prices: defaultdict[str, Counter[Decimal]] = defaultdict(Counter)
    countries: defaultdict[str, Counter[str]] = defaultdict(Counter)
    first_seen: dict[str, datetime] = {}
    for invoice in invoices:
        for line in invoice.lines:
            names[line.sku][line.name] += 1
            prices[line.sku][line.unit_price] += 1
        if invoice.customer_id is not None:
            countries[invoice.customer_id][invoice.country] += len(invoice.lines)
            first_seen.setdefault(invoice.customer_id, invoice.placed_at)  # invoices are in time order
    products = [
        RetailProduct(
            sku, min(counts.items(), key=lambda item: (-item[1], item[0]))[0], _most_common_price(prices[sku])
        )
        for sku, counts in sorted(names.items())
    ]
    unmapped: Counter[str] = Counter()
    customers = []
    for user_id, counts in sorted(countries.items()):
        country_name = min(counts.items(), key=lambda item: (-item[1], item[0]))[0]
        if country_name not in COUNTRY_CODES:
            unmapped[country_name] += 1
        customers.append(RetailCustomer(user_id, COUNTRY_CODES.get(country_name, ""), first_seen[user_id]))
    return RetailData(products, customers, invoices, rows_read, rows_outside, skipped, skipped_codes, unmapped)
