"""Google Merchant Center product feeds (TSV, RSS 2.0, Atom 1.0) read as ``ProductIn``-shaped dicts.

Pure module: no Django imports. ``parse_merchant_feed`` streams the file and yields one ``FeedRow`` per
product; a row with problems carries them in ``errors`` and the rest go on. ``FeedError`` means the whole
file is unusable; it is raised while iterating (for a truncated XML file, after the items read so far).
XML goes through defusedxml, so entity bombs and external entities are refused, and each item is dropped
from memory once mapped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, iterparse

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from _typeshed import WriteableBuffer

FeedFormat = Literal["tsv", "xml"]
Raw = dict[str, list[str]]  # attribute name -> its non-empty values, in file order
Errors = dict[str, list[str]]
Attributes = dict[str, str | list[str]]

HEAD_SIZE = 1024
G_NAMESPACE = "http://base.google.com/"  # ns/1.0, and the older cns/1.0 for custom attributes
ITEM_TAGS = frozenset({"item", "entry"})
# Plain RSS/Atom elements of an item that carry product data; the g: element of the same name wins.
PLAIN_FIELDS = {"id": "id", "title": "title", "link": "link", "description": "description", "summary": "description"}
CUSTOM_LABELS = tuple(f"custom_label_{n}" for n in range(5))
DIRECT_FIELDS = {
    "title": "name",
    "description": "description",
    "link": "url",
    "image_link": "image_url",
    "brand": "brand",
}
MAPPED = frozenset({"id", "price", "sale_price", "product_type", *DIRECT_FIELDS, *CUSTOM_LABELS})
LIST_ATTRIBUTES = frozenset({"additional_image_link"})  # comma-separated in TSV, repeated in XML
# Sub-attribute slots of nested XML groups, in the order of the spec's TSV syntax ("US:CA:Overnight:16.00 USD").
NESTED_SLOTS = {
    "shipping": (
        ("country",),
        ("region", "postal_code", "location_id", "location_group_name"),
        ("service",),
        ("price",),
    ),
    "tax": (("country",), ("region", "postal_code", "location_id"), ("rate",), ("tax_ship",)),
}
# "15.00 USD", "15 USD", "USD 15.00", "15,00 EUR"; a comma takes 1-2 decimals so "15,000 USD" is not read as 15.
PRICE = re.compile(r"(?:(?P<before>[A-Za-z]{3})\s*)?(?P<amount>\d+(?:\.\d+|,\d{1,2})?)(?:\s*(?P<after>[A-Za-z]{3}))?")
AVAILABILITY = {"instock": True, "outofstock": False, "preorder": True, "backorder": True, "availablefororder": True}
GPC_ID_PREFIX = re.compile(r"^\d+\s*-\s*")  # "2169 - Home & Garden > ..." as in Google's taxonomy-with-ids file


class FeedError(Exception):
    """The file cannot be read as a product feed at all."""


@dataclass(frozen=True)
class FeedRow:
    position: int  # 1-based: the TSV data row (blank rows count but yield nothing) or the XML item
    product: dict[str, Any]  # ready for ProductIn.model_validate; {} if unusable
    errors: dict[str, list[str]]  # problems found while mapping; empty if fine


def detect_format(head: bytes) -> FeedFormat:
    """``"xml"`` if the first non-blank character (after a byte order mark) is ``<``, else ``"tsv"``."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
        return "xml" if text.lstrip().startswith("<") else "tsv"
    return "xml" if head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"<") else "tsv"


def parse_merchant_feed(stream: BinaryIO, *, feed_format: FeedFormat | None = None) -> Iterator[FeedRow]:
    """Yield one ``FeedRow`` per product of a Merchant Center feed; the caller keeps ``stream`` open."""
    head = stream.read(HEAD_SIZE)
    rewound = io.BufferedReader(_Rewound(head, stream))
    now = datetime.now(UTC)
    if (feed_format or detect_format(head)) == "xml":
        yield from _read_xml(rewound, now)
    else:
        utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))  # Excel's "Unicode text"
        yield from _read_tsv(rewound, "utf-16" if utf16 else "utf-8-sig", now)


class _Rewound(io.RawIOBase):
    """The bytes already read to sniff the format, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            chunk, self._head = self._head[: len(view)], self._head[len(view) :]
        else:
            chunk = self._rest.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)


def _attribute_name(header: str) -> str:
    """``"g:Image Link"`` -> ``"image_link"``; ``"shipping(country:price)"`` -> ``"shipping"``."""
    name = header.strip().lower().removeprefix("g:").split("(")[0].strip()
    return re.sub(r"[\s-]+", "_", name)


def _read_tsv(stream: BinaryIO, encoding: str, now: datetime) -> Iterator[FeedRow]:
    reader = csv.reader(io.TextIOWrapper(stream, encoding=encoding, newline=""), delimiter="\t")
    try:
        header = next(reader, [])
        names = [_attribute_name(cell) for cell in header]
        if not any(names):
            raise FeedError("the file is empty: a feed starts with a header row of attribute names")
        if "id" not in names:
            comma = len(header) == 1 and "," in header[0]
            hint = "; it looks comma-separated, but Merchant Center text feeds are tab-separated" if comma else ""
            raise FeedError(f"the header row has no 'id' column{hint}")
        for position, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue
            raw: Raw = {}
            for name, cell in zip(names, cells, strict=False):
                values = cell.split(",") if name in LIST_ATTRIBUTES else [cell]
                raw.setdefault(name, []).extend(value.strip() for value in values if name and value.strip())
            errors: Errors = {}
            if any(cell.strip() for cell in cells[len(names) :]):
                errors["row"] = [f"has {len(cells)} values but the header names {len(names)} columns"]
            yield _map_item({name: values for name, values in raw.items() if values}, position, now, errors)
    except UnicodeDecodeError as exc:
        raise FeedError(f"the file is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except csv.Error as exc:
        raise FeedError(f"line {reader.line_num}: {exc}") from exc


def _split_tag(tag: str) -> tuple[str, str]:
    namespace, _, name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, name


def _read_xml(stream: BinaryIO, now: datetime) -> Iterator[FeedRow]:
    stack: list[Element] = []
    position = 0
    try:
        for event, element in iterparse(stream, events=("start", "end")):
            namespace, name = _split_tag(element.tag)
            if event == "start":
                if not stack and name not in ("rss", "feed"):
                    raise FeedError(f"the XML root is <{name}>, not an RSS <rss> or Atom <feed> product feed")
                stack.append(element)
                continue
            stack.pop()
            if name in ITEM_TAGS and not namespace.startswith(G_NAMESPACE) and stack:
                position += 1
                yield _map_item(_xml_item(element), position, now, {})
                element.clear()
                stack[-1].remove(element)  # also drop the emptied element, or a big feed piles them up
    except ParseError as exc:
        raise FeedError(f"the file is not well-formed XML: {exc}") from exc
    except DefusedXmlException as exc:
        raise FeedError("the XML declares entities or external references, which a feed never needs; refused") from exc


def _text(element: Element) -> str:
    return "".join(element.itertext()).strip()


def _xml_item(item: Element) -> Raw:
    google: Raw = {}
    plain: Raw = {}
    for child in item:
        namespace, name = _split_tag(child.tag)
        if namespace.startswith(G_NAMESPACE):
            target, key, value = google, name.lower(), _flatten(name.lower(), child) if len(child) else _text(child)
        elif name == "link" and "href" in child.attrib:  # Atom: the first rel="alternate" link is the page
            if child.get("rel", "alternate") != "alternate":
                continue
            target, key, value = plain, "link", child.get("href", "").strip()
        elif name in PLAIN_FIELDS:
            target, key, value = plain, PLAIN_FIELDS[name], _text(child)
        else:
            continue
        if value:
            target.setdefault(key, []).append(value)
    for key, values in plain.items():
        google.setdefault(key, values)
    return google


def _flatten(name: str, group: Element) -> str:
    """A nested group as the spec's TSV syntax: ``<g:shipping>`` -> ``"US::Standard:4.95 USD"``."""
    parts = {_split_tag(sub.tag)[1].lower(): _text(sub) for sub in group}
    slots = NESTED_SLOTS.get(name)
    if slots is None:
        return ":".join(value for value in parts.values() if value)
    return ":".join(next((parts[key] for key in slot if parts.get(key)), "") for slot in slots)


def _first(raw: Raw, key: str) -> str:
    values = raw.get(key)
    return values[0] if values else ""


def _map_item(raw: Raw, position: int, now: datetime, errors: Errors) -> FeedRow:
    sku = _first(raw, "id")
    if not sku:
        return FeedRow(position, {}, {"id": ["missing"], **errors})
    product: dict[str, Any] = {"sku": sku}
    for key, target in DIRECT_FIELDS.items():
        if value := _first(raw, key):
            product[target] = value
    attributes: Attributes = {
        key: values if key in LIST_ATTRIBUTES or len(values) > 1 else values[0]
        for key, values in raw.items()
        if key not in MAPPED
    }
    _map_prices(raw, now, product, attributes, errors)
    if availability := _first(raw, "availability"):
        in_stock = AVAILABILITY.get(re.sub(r"[\s_-]+", "", availability.lower()))
        if in_stock is None:
            message = f"'{availability}' is not one of: in stock, out of stock, preorder, backorder"
            errors.setdefault("availability", []).append(message)
        else:
            product["in_stock"] = in_stock
    if category := _category(_first(raw, "product_type"), _first(raw, "google_product_category")):
        product["category"] = category
    if tags := list(dict.fromkeys(tag for label in CUSTOM_LABELS for tag in raw.get(label, []))):
        product["tags"] = tags
    if attributes:
        product["attributes"] = attributes
    return FeedRow(position, product, errors)


def _parse_price(value: str, key: str, errors: Errors) -> tuple[str, str | None] | None:
    """``"15,00 eur"`` -> ``("15.00", "EUR")``; a bad value is reported under ``key``."""
    if not value:
        return None
    match = PRICE.fullmatch(value)
    if match is None or (match["before"] and match["after"]):
        errors.setdefault(key, []).append(f"'{value}' is not a price like '15.00 USD'")
        return None
    currency = match["before"] or match["after"]
    return match["amount"].replace(",", "."), currency.upper() if currency else None


def _sale_running(window: str, now: datetime, errors: Errors) -> bool:
    """Whether ``now`` is inside ``sale_price_effective_date`` (``start/end`` in ISO 8601); no window: always."""
    if not window:
        return True
    try:
        start, end = (datetime.fromisoformat(part.strip()) for part in window.split("/"))
    except ValueError:
        errors.setdefault("sale_price_effective_date", []).append(f"'{window}' is not a 'start/end' ISO 8601 range")
        return False
    return start.replace(tzinfo=start.tzinfo or UTC) <= now < end.replace(tzinfo=end.tzinfo or UTC)


def _map_prices(raw: Raw, now: datetime, product: dict[str, Any], attributes: Attributes, errors: Errors) -> None:
    """A running ``sale_price`` becomes the price and the regular one ``attributes["list_price"]``."""
    price = _parse_price(_first(raw, "price"), "price", errors)
    sale = _parse_price(_first(raw, "sale_price"), "sale_price", errors)
    if sale and price and sale[1] and price[1] and sale[1] != price[1]:
        errors.setdefault("sale_price", []).append(f"is in {sale[1]} but the price is in {price[1]}")
        sale = None
    if sale and not _sale_running(_first(raw, "sale_price_effective_date"), now, errors):
        attributes["sale_price"] = _first(raw, "sale_price")
        sale = None
    if sale:
        if price:
            attributes["list_price"] = price[0]
        price = (sale[0], sale[1] or (price[1] if price else None))
    if price:
        product["price"] = price[0]
        if price[1]:
            product["currency"] = price[1]


def _category(product_type: str, google_category: str) -> str:
    """The shop's first ``product_type`` path, else Google's category when it is a text path."""
    if product_type:
        paths = product_type.split(",")  # several paths, comma-separated; "Pots, Pans" stays one level
        return paths[0].strip() if len(paths) > 1 and all(">" in path for path in paths) else product_type
    google_category = GPC_ID_PREFIX.sub("", google_category)
    return "" if google_category.isdigit() else google_category
