"""Validation of incoming events, following the Segment spec (pure: msgspec, no Django).

Each event of a batch is validated on its own, so a bad event is reported (which field, why) and
its neighbours are kept. msgspec rather than pydantic here: the collector validates tens of
thousands of events a second, and msgspec converts a dict several times faster.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from config.input_errors import msgspec_error_field
from tracking.event_time import EARLIEST, LATEST, TIME_RANGE_REASON, time_in_range

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
# What the order tables hold: a line's unit price (numeric(12, 2)) and an order's revenue, the sum
# of its lines (numeric(14, 2)).
MAX_PRICE = 9_999_999_999.99
MAX_ORDER_REVENUE = Decimal("999999999999.99")

# Numbers as ids are 64-bit integers (what SDKs send); written out they fit every id column.
IntId = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | IntId
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Price = Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
ProductKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | IntId

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
ONE_LETTER_TYPES = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}


class Envelope(msgspec.Struct, kw_only=True):
    """The fields common to every call. Unknown top-level fields are kept, not refused (SDKs add
    their own, e.g. ``_metadata``)."""

    type: EventType
    messageId: MessageId | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    context: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    integrations: dict[str, Any] = {}
    event: Name | None = None
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    category: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    groupId: Id | None = None
    previousId: Id | None = None


# --- the E-commerce Spec v2 --------------------------------------------------------------------


class Product(msgspec.Struct, kw_only=True):
    product_id: ProductKey | None = None
    sku: ProductKey | None = None
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    price: Price | None = None
    quantity: Quantity = 1
    category: str | None = None
    brand: str | None = None
    position: int | None = None


class ProductEvent(Product):
    """Product Viewed, Clicked, Added, Removed."""

    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")] | None = None


class ProductList(msgspec.Struct, kw_only=True):
    """Cart Viewed, Product List Viewed, Checkout Started."""

    products: list[Product] = []
    order_id: Annotated[str, msgspec.Meta(max_length=100)] | IntId | None = None
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")] | None = None


class Order(msgspec.Struct, kw_only=True):
    """Order Completed, Order Cancelled."""

    order_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | IntId
    products: list[Product] = []
    revenue: NonNegative | None = None
    total: NonNegative | None = None
    subtotal: NonNegative | None = None
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")] | None = None


class Search(msgspec.Struct, kw_only=True):
    query: Annotated[str, msgspec.Meta(max_length=500)]


# Deeper than any SDK nests, and far from the depth where a JSON decoder or encoder (msgspec's,
# PostgreSQL's) gives up: an event within it can be decoded, appended and stored whatever the stack.
MAX_EVENT_DEPTH = 64
DEPTH_REASON = f"is nested more than {MAX_EVENT_DEPTH} levels deep"


ECOMMERCE: dict[str, type[msgspec.Struct]] = {
    "Product Viewed": ProductEvent,
    "Product Clicked": ProductEvent,
    "Product Added": ProductEvent,
    "Product Removed": ProductEvent,
    "Cart Viewed": ProductList,
    "Checkout Started": ProductList,
    "Product List Viewed": ProductList,
    "Order Completed": Order,
    "Order Cancelled": Order,
    "Products Searched": Search,
}
PRODUCT_EVENTS = {"Product Viewed", "Product Clicked", "Product Added", "Product Removed"}


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    index: int
    message_id: str | None
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "messageId": self.message_id, "field": self.field, "reason": self.reason}


class InvalidEvent(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _from_msgspec(error: msgspec.ValidationError, prefix: str = "") -> InvalidEvent:
    """``Expected `str`, got `int` - at `$.userId``` → field ``userId``, reason ``Expected `str`, got `int```."""
    path, reason = msgspec_error_field(error)
    return InvalidEvent(".".join(part for part in (prefix, path) if part) or "event", reason)


# --- one event ---------------------------------------------------------------------------------


def _text(value: str | int | None) -> str:
    return "" if value is None else str(value)


def validate_event(
    raw: Any, *, batch_context: Mapping[str, Any] | None = None, path_type: str | None = None
) -> Envelope:
    """Check one event; raises ``InvalidEvent`` naming the field. ``path_type`` is the type implied by
    the URL (``/v1/track``); batch-level context is merged under the event's own."""
    if not isinstance(raw, dict):
        raise InvalidEvent("event", "must be a JSON object")
    if path_type is not None:
        raw.setdefault("type", path_type)
    elif isinstance(raw.get("type"), str) and raw["type"] in ONE_LETTER_TYPES:
        raw["type"] = ONE_LETTER_TYPES[raw["type"]]
    try:
        event = msgspec.convert(raw, Envelope, strict=False)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc) from exc
    return _checked(event, batch_context)


_ENVELOPE_JSON = msgspec.json.Decoder(Envelope, strict=False)


def validate_encoded_event(data: bytes | msgspec.Raw, *, batch_context: Mapping[str, Any] | None = None) -> Envelope:
    """``validate_event`` for an event of a batch still in JSON, decoded straight into an
    ``Envelope`` (about twice as fast as a dict converted). Raises ``msgspec.DecodeError`` or
    ``msgspec.ValidationError`` as msgspec words them, or ``InvalidEvent``: a caller reports a
    refusal by running ``validate_event`` on the decoded dict, which names the field the same way
    for every event. Letters for types (``"t"``) are refused here; ``validate_event`` accepts them."""
    return _checked(_ENVELOPE_JSON.decode(data), batch_context)


def _checked(event: Envelope, batch_context: Mapping[str, Any] | None) -> Envelope:
    """The rules a type cannot say, the E-commerce Spec's properties, then the batch's context
    merged in and a messageId given to an event without one."""
    if event.userId is None and event.anonymousId is None:
        raise InvalidEvent("userId", "every event needs a userId or an anonymousId")
    if event.type == "track" and event.event is None:
        raise InvalidEvent("event", "a track call needs the name of the event")
    if event.type == "group" and event.groupId is None:
        raise InvalidEvent("groupId", "a group call needs a groupId")
    if event.type == "alias" and (event.previousId is None or event.userId is None):
        raise InvalidEvent("previousId", "an alias call needs a previousId and a userId")
    _check_times(event)
    if event.type == "track" and event.event in ECOMMERCE:
        try:
            details = msgspec.convert(event.properties, ECOMMERCE[event.event], strict=False)
        except msgspec.ValidationError as exc:
            raise _from_msgspec(exc, "properties") from exc
        if isinstance(details, Order) and _lines_total(details) > MAX_ORDER_REVENUE:
            raise InvalidEvent("properties.products", f"the lines add up to more than {MAX_ORDER_REVENUE:,}")
        if isinstance(details, Product) and details.product_id is None and details.sku is None:
            raise InvalidEvent("properties.product_id", f"a {event.event} event needs a product_id or a sku")
        for position, product in enumerate(getattr(details, "products", [])):
            if product.product_id is None and product.sku is None:
                raise InvalidEvent(
                    f"properties.products.{position}.product_id", "each product needs a product_id or a sku"
                )
    if batch_context:
        event.context = {**batch_context, **event.context}
    if event.messageId is None:
        event.messageId = f"pz-{uuid.uuid4()}"
    return event


def _check_times(event: Envelope) -> None:
    """Each time in range and with a time zone (one without is taken as UTC, see ``event_time``).
    Written out for the common case, times with a zone and in range, which it only compares."""
    timestamp, original, sent = event.timestamp, event.originalTimestamp, event.sentAt
    if (
        (timestamp is None or (timestamp.tzinfo is not None and EARLIEST <= timestamp < LATEST))
        and (original is None or (original.tzinfo is not None and EARLIEST <= original < LATEST))
        and (sent is None or (sent.tzinfo is not None and EARLIEST <= sent < LATEST))
    ):
        return
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        moment = getattr(event, name)
        if moment is not None:
            moment = time_in_range(moment)
            if moment is None:
                raise InvalidEvent(name, TIME_RANGE_REASON)
            setattr(event, name, moment)


def _lines_total(order: Order) -> Decimal:
    """The revenue the order's lines add up to, as the consumer records it (lines without a price
    take the catalog's, which a shop keeps below ``MAX_PRICE``)."""
    return sum((Decimal(str(p.price)) * p.quantity for p in order.products if p.price is not None), Decimal(0))


def subject_ids(event: Envelope) -> tuple[str, str]:
    """``(user_id, anonymous_id)`` as strings (Segment allows numbers)."""
    return _text(event.userId), _text(event.anonymousId)


def platform_event(event: Mapping[str, Any]) -> bool:
    """Logged by the platform itself (the recommendation API's exposures), not by the visitor: the
    collector strips ``context.pz.internal`` from anyone else's events."""
    pz = (event.get("context") or {}).get("pz")
    return isinstance(pz, dict) and pz.get("internal") == "exposure"


def product_key(values: Mapping[str, Any]) -> str:
    """The catalog key of a product in an event: its ``product_id``, else its ``sku`` (the platform's
    catalog identifies products by the shop's SKU; send it as product_id)."""
    key = values.get("product_id")
    if key is None or key == "":
        key = values.get("sku")
    return "" if key is None else str(key)
