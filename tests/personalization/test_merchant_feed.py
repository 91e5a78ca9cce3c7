"""The Merchant Center feed reader: pure, no database."""

import codecs
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from pydantic import ValidationError

from personalization.catalog_input import ProductIn
from personalization.merchant_feed import FeedError, FeedFormat, FeedRow, detect_format, parse_merchant_feed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "merchant_feed"


def read_fixture(name: str) -> list[FeedRow]:
    with (FIXTURES / name).open("rb") as stream:
        return list(parse_merchant_feed(stream))


def read_bytes(data: bytes, feed_format: FeedFormat | None = None) -> list[FeedRow]:
    return list(parse_merchant_feed(io.BytesIO(data), feed_format=feed_format))


def tsv(*lines: str) -> bytes:
    return "\n".join(lines).encode()


def rss(*items: str) -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return f'<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>{body}</channel></rss>'.encode()


# --- format detection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?><rss>', "xml"),
        (codecs.BOM_UTF8 + b" \r\n\t<feed xmlns=", "xml"),
        (codecs.BOM_UTF16_LE + "<?xml".encode("utf-16-le"), "xml"),
        (codecs.BOM_UTF16_LE + "id\ttitle".encode("utf-16-le"), "tsv"),
        (b"id\ttitle\tprice\n", "tsv"),
        (codecs.BOM_UTF8 + b"id\ttitle", "tsv"),
        (b"", "tsv"),
    ],
)
def test_detect_format(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


# --- TSV --------------------------------------------------------------------------------------------------------


def test_tsv_fixture_maps_rows_with_bom_quotes_and_case_insensitive_headers() -> None:
    rows = read_fixture("products.tsv")

    assert [row.position for row in rows] == [1, 2, 3, 4, 6]  # the blank 5th data row yields nothing
    assert rows[0] == FeedRow(
        position=1,
        product={
            "sku": "MUG-001",
            "name": "Ceramic Mug",
            "description": "Holds 350 ml.\tDishwasher safe.\nMade in Portugal.",
            "url": "https://shop.example.com/products/ceramic-mug",
            "image_url": "https://shop.example.com/img/mug-1.jpg",
            "brand": "Acme",
            "price": "12.50",
            "currency": "USD",
            "in_stock": True,
            "category": "Home > Kitchen > Mugs",
            "tags": ["summer", "bestseller"],
            "attributes": {
                "availability": "in stock",
                "google_product_category": "2169",
                "gtin": "00012345678905",
                "condition": "new",
                "color": "Blue",
                "additional_image_link": [
                    "https://shop.example.com/img/mug-1b.jpg",
                    "https://shop.example.com/img/mug-1c.jpg",
                ],
            },
        },
        errors={},
    )
    assert rows[1].product == {
        "sku": "TEE-RED-M",
        "name": "Organic Tee Red M",
        "description": "Soft organic cotton tee.",
        "url": "https://shop.example.com/products/tee?variant=red-m",
        "image_url": "https://shop.example.com/img/tee-red.jpg",
        "brand": "Northwind",
        "price": "19.99",
        "currency": "EUR",
        "in_stock": False,
        "category": "Apparel & Accessories > Clothing > Shirts & Tops",
        "attributes": {
            "availability": "out_of_stock",
            "google_product_category": "Apparel & Accessories > Clothing > Shirts & Tops",
            "condition": "new",
            "item_group_id": "TEE",
            "color": "Red",
            "size": "M",
            "list_price": "25.00",
        },
    }
    assert rows[4].product["name"] == 'The "Quiet" Kitchen'
    assert (rows[4].product["price"], rows[4].product["currency"], rows[4].product["in_stock"]) == ("8", "USD", True)


def test_tsv_fixture_reports_bad_price_and_missing_id() -> None:
    rows = read_fixture("products.tsv")

    assert rows[2].product["sku"] == "BAD-PRICE-3"
    assert "price" not in rows[2].product
    assert rows[2].product["in_stock"] is True  # preorder is sellable
    assert rows[2].errors == {"price": ["'abc' is not a price like '15.00 USD'"]}
    assert rows[3] == FeedRow(position=4, product={}, errors={"id": ["missing"]})


@pytest.mark.parametrize("name", ["products.tsv", "products.rss.xml", "products.atom.xml"])
def test_rows_without_errors_validate_and_bad_prices_do_not(name: str) -> None:
    rows = read_fixture(name)

    good = [row for row in rows if not row.errors]
    assert len(good) >= 3
    for row in good:
        ProductIn.model_validate(row.product)
    for row in rows:
        if "price" in row.errors:
            with pytest.raises(ValidationError, match="price"):
                ProductIn.model_validate(row.product)


def test_tsv_empty_file_is_refused() -> None:
    with pytest.raises(FeedError, match="the file is empty"):
        read_bytes(b"")


def test_tsv_without_id_column_is_refused() -> None:
    with pytest.raises(FeedError, match=r"^the header row has no 'id' column$"):
        read_bytes(tsv("sku\ttitle\tprice", "A\tMug\t1.00 USD"))


def test_comma_separated_file_gets_a_hint() -> None:
    with pytest.raises(FeedError, match="looks comma-separated"):
        read_bytes(tsv("id,title,price", "A,Mug,1.00 USD"))


def test_tsv_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(FeedError, match="not UTF-8"):
        read_bytes("id\ttitle\nA\tCaf\u00e9 cup\n".encode("latin-1"))


def test_tsv_in_utf16_as_excel_saves_unicode_text() -> None:
    data = codecs.BOM_UTF16_LE + "ID\tTitle\tPrice\r\nA-1\tCaf\u00e9 cup\t4.50 EUR\r\n".encode("utf-16-le")

    assert read_bytes(data) == [
        FeedRow(1, {"sku": "A-1", "name": "Caf\u00e9 cup", "price": "4.50", "currency": "EUR"}, {})
    ]


def test_tsv_header_names_are_normalised() -> None:
    rows = read_bytes(
        tsv("G:ID\tImage Link\tCustom Label 2\tshipping(country:service:price)", "A\t/img/a.jpg\tx\tUS::Std:1 USD")
    )

    assert rows[0].product == {
        "sku": "A",
        "image_url": "/img/a.jpg",
        "tags": ["x"],
        "attributes": {"shipping": "US::Std:1 USD"},
    }


def test_tsv_row_with_more_values_than_columns_is_flagged() -> None:
    rows = read_bytes(tsv("id\ttitle", "A\tMug\tstray", "B\tCup\t"))

    assert rows[0].errors == {"row": ["has 3 values but the header names 2 columns"]}
    assert rows[1].errors == {}


# --- prices, availability, categories ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "price", "currency"),
    [
        ("15.00 USD", "15.00", "USD"),
        ("15 USD", "15", "USD"),
        ("USD 15.00", "15.00", "USD"),
        ("15,00 eur", "15.00", "EUR"),
        ("15.5GBP", "15.5", "GBP"),
        ("2500", "2500", None),  # old Atom examples; the platform's default currency applies
    ],
)
def test_price_forms(value: str, price: str, currency: str | None) -> None:
    [row] = read_bytes(tsv("id\tprice", f"A\t{value}"))

    assert row.errors == {}
    assert row.product["price"] == price
    assert row.product.get("currency") == currency


@pytest.mark.parametrize("value", ["abc", "15,000 USD", "1.234,56 EUR", "USD 15 EUR", "-5 USD", "15 US dollars"])
def test_bad_prices(value: str) -> None:
    [row] = read_bytes(tsv("id\tprice", f"A\t{value}"))

    assert row.errors == {"price": [f"'{value}' is not a price like '15.00 USD'"]}
    assert "price" not in row.product


def test_sale_price_outside_its_window_is_kept_aside() -> None:
    header = "id\tprice\tsale_price\tsale_price_effective_date"
    rows = read_bytes(
        tsv(
            header,
            "OLD\t20.00 USD\t15.00 USD\t2000-01-01T00:00Z/2000-02-01T00:00Z",
            "NOW\t20.00 USD\t15.00 USD\t2000-01-01T00:00-0800/2999-01-01T00:00-0800",
            "BAD\t20.00 USD\t15.00 USD\tsoon",
        )
    )

    assert rows[0].product["price"] == "20.00"
    assert rows[0].product["attributes"] == {
        "sale_price_effective_date": "2000-01-01T00:00Z/2000-02-01T00:00Z",
        "sale_price": "15.00 USD",
    }
    assert rows[1].product["price"] == "15.00"
    assert rows[1].product["attributes"]["list_price"] == "20.00"
    assert rows[2].product["price"] == "20.00"
    assert rows[2].errors == {"sale_price_effective_date": ["'soon' is not a 'start/end' ISO 8601 range"]}


def test_sale_price_problems() -> None:
    rows = read_bytes(tsv("id\tprice\tsale_price", "A\t20.00 USD\t15.00 EUR", "B\t20.00 USD\tcheap", "C\tx\t9 USD"))

    assert rows[0].product["price"] == "20.00"
    assert rows[0].errors == {"sale_price": ["is in EUR but the price is in USD"]}
    assert rows[1].product["price"] == "20.00"
    assert rows[1].errors == {"sale_price": ["'cheap' is not a price like '15.00 USD'"]}
    assert (rows[2].product["price"], rows[2].product["currency"]) == ("9", "USD")
    assert rows[2].errors == {"price": ["'x' is not a price like '15.00 USD'"]}
    assert "list_price" not in rows[2].product.get("attributes", {})


@pytest.mark.parametrize(
    ("value", "in_stock"),
    [("in stock", True), ("In_Stock", True), ("out of stock", False), ("out-of-stock", False), ("preorder", True),
     ("backorder", True)],
)  # fmt: skip
def test_availability(value: str, in_stock: bool) -> None:
    [row] = read_bytes(tsv("id\tavailability", f"A\t{value}"))

    assert row.product == {"sku": "A", "in_stock": in_stock, "attributes": {"availability": value}}


def test_unknown_availability_is_reported() -> None:
    [row] = read_bytes(tsv("id\tavailability", "A\tmaybe"))

    assert "in_stock" not in row.product
    assert row.errors == {"availability": ["'maybe' is not one of: in stock, out of stock, preorder, backorder"]}


@pytest.mark.parametrize(
    ("product_type", "google_category", "category"),
    [
        ("Home > Kitchen > Mugs, Gifts > Mugs", "", "Home > Kitchen > Mugs"),
        ("Home > Kitchen > Pots, Pans", "", "Home > Kitchen > Pots, Pans"),
        ("", "Home & Garden > Kitchen & Dining", "Home & Garden > Kitchen & Dining"),
        ("", "2169 - Home & Garden > Kitchen & Dining", "Home & Garden > Kitchen & Dining"),
        ("", "2169", None),
    ],
)
def test_category(product_type: str, google_category: str, category: str | None) -> None:
    [row] = read_bytes(tsv("id\tproduct_type\tgoogle_product_category", f"A\t{product_type}\t{google_category}"))

    assert row.product.get("category") == category


# --- XML --------------------------------------------------------------------------------------------------------


def test_rss_fixture() -> None:
    rows = read_fixture("products.rss.xml")

    assert [row.position for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0] == FeedRow(
        position=1,
        product={
            "sku": "SOFA-1",
            "name": "Linen Sofa & Cushions",
            "description": "<p>Soft &amp; <b>deep</b> seats.</p>",
            "url": "https://shop.example.com/products/linen-sofa",
            "image_url": "https://shop.example.com/img/sofa-1.jpg",
            "brand": "Nordhaus",
            "price": "499.00",
            "currency": "USD",
            "in_stock": True,
            "category": "Home > Living Room > Sofas",
            "attributes": {
                "additional_image_link": [
                    "https://shop.example.com/img/sofa-2.jpg",
                    "https://shop.example.com/img/sofa-3.jpg",
                ],
                "availability": "in stock",
                "condition": "new",
                "google_product_category": "Furniture > Sofas",
                "mpn": "NH-SOFA-1",
                "shipping": "US::Standard:0.00 USD",
            },
        },
        errors={},
    )
    assert rows[1].product == {
        "sku": "CHAIR-2",
        "name": "Oak Dining Chair",
        "description": "Solid oak.",
        "url": "https://shop.example.com/products/oak-chair",
        "image_url": "https://shop.example.com/img/chair.jpg",
        "price": "89.90",
        "currency": "EUR",
        "in_stock": False,
        "attributes": {"availability": "out of stock", "google_product_category": "443", "material": "Oak"},
    }
    assert rows[2].errors == {"price": ["'twelve dollars' is not a price like '15.00 USD'"]}
    assert rows[3] == FeedRow(position=4, product={}, errors={"id": ["missing"]})
    assert rows[4].product == {
        "sku": "RUG-5",
        "name": "Wool Rug 160x230",
        "description": "Hand-woven wool rug.",
        "url": "https://shop.example.com/products/wool-rug",
        "price": "199.00",
        "currency": "USD",
        "in_stock": True,
        "category": "Home > Rugs",
        "tags": ["clearance", "wool"],
        "attributes": {
            "availability": "in_stock",
            "tax": "US:CA:8.25:yes",
            "shipping": ["US:CA:Overnight:16.00 USD", "CA:::25.00 USD"],
            "list_price": "240.00",
        },
    }


def test_atom_fixture() -> None:
    rows = read_fixture("products.atom.xml")

    assert rows == [
        FeedRow(
            1,
            {
                "sku": "TENT-1",
                "name": "Two-Person Tent",
                "description": "Light, three-season tent.",
                "url": "https://outdoor.example.com/products/tent",
                "image_url": "https://outdoor.example.com/img/tent.jpg",
                "brand": "Summit",
                "price": "249.00",
                "currency": "USD",
                "in_stock": True,
                "category": "Outdoor > Camping > Tents",
                "attributes": {"availability": "in stock"},
            },
            {},
        ),
        FeedRow(
            2,
            {
                "sku": "STOVE-2",
                "name": "Camping Stove",
                "description": "Compact gas stove.",
                "url": "https://outdoor.example.com/products/stove",
                "price": "39.90",
                "currency": "EUR",
                "in_stock": False,
                "attributes": {"availability": "out of stock"},
            },
            {},
        ),
        FeedRow(
            3,
            {
                "sku": "PACK-3",
                "name": "Day Pack 20 L",
                "description": "A 20 litre day pack with a rain cover.",
                "url": "https://outdoor.example.com/products/day-pack",
                "price": "59",
                "currency": "USD",
                "in_stock": True,
                "attributes": {"availability": "backorder", "color": "Green", "size": "20 L"},
            },
            {},
        ),
    ]


def test_xml_single_additional_image_is_a_list_and_other_groups_flatten_in_order() -> None:
    [row] = read_bytes(
        rss(
            "<g:id>A</g:id><g:additional_image_link>/img/b.jpg</g:additional_image_link>"
            "<g:product_detail><g:section_name>General</g:section_name><g:attribute_name>Type</g:attribute_name>"
            "<g:attribute_value>Mug</g:attribute_value></g:product_detail><guid>ignored</guid>"
        )
    )

    assert row.product == {
        "sku": "A",
        "attributes": {"additional_image_link": ["/img/b.jpg"], "product_detail": "General:Type:Mug"},
    }


def test_hostile_xml_is_refused() -> None:
    with pytest.raises(FeedError, match="declares entities"):
        read_fixture("hostile.xml")


def test_external_entity_is_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel/></rss>'

    with pytest.raises(FeedError, match="declares entities"):
        read_bytes(data)


def test_xml_that_is_not_a_feed_is_refused() -> None:
    with pytest.raises(FeedError, match=r"the XML root is <html>, not an RSS <rss> or Atom <feed> product feed"):
        read_bytes(b"<html><body><item>1</item></body></html>")


def test_broken_xml_is_refused_after_the_items_before_the_break() -> None:
    rows: list[FeedRow] = []
    with pytest.raises(FeedError, match="not well-formed XML"):
        rows.extend(
            parse_merchant_feed(io.BytesIO(rss("<g:id>A</g:id>").removesuffix(b"</channel></rss>") + b"<item><g"))
        )

    assert [row.product["sku"] for row in rows] == ["A"]


def test_feed_format_overrides_detection() -> None:
    with pytest.raises(FeedError, match="no 'id' column"):
        read_bytes(rss("<g:id>A</g:id>"), feed_format="tsv")


# --- streaming --------------------------------------------------------------------------------------------------


class GeneratedFeed:
    """A read-only, non-seekable RSS feed of ``count`` items, made as it is read."""

    def __init__(self, count: int) -> None:
        self._chunks = self._generate(count)
        self._buffer = b""

    @staticmethod
    def _generate(count: int) -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>'
        for n in range(count):
            yield (
                f"<item><g:id>SKU-{n}</g:id><title>Product {n}</title><link>https://shop.example.com/p/{n}</link>"
                f"<description>{'A fine product. ' * 20}</description><g:price>{n % 100}.99 USD</g:price>"
                "<g:availability>in stock</g:availability><g:color>Blue</g:color></item>"
            ).encode()
        yield b"</channel></rss>"

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return data


def test_large_feed_streams_in_little_memory() -> None:
    count = 20_000  # about 10 MB of XML
    tracemalloc.start()
    try:
        seen = sum(1 for row in parse_merchant_feed(cast(BinaryIO, GeneratedFeed(count))) if not row.errors)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert seen == count
    assert peak < 1024 * 1024  # without dropping each item it is ~2 MB, without clearing it ~30 MB
