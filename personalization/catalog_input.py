"""Validation of product rows, shared by the catalog API, the Merchant feed import and the loaders.

Pure module: no Django imports. A row that fails comes back as a ``RowError`` naming the row
(its index and SKU) and each failing field with a sentence; the good rows go on.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from config.input_errors import validation_error_fields

CATEGORY_SEPARATOR = " > "
MAX_TAGS = 50
MAX_ATTRIBUTES = 100
MAX_STOCK = 2_147_483_647  # what the stock column (a PostgreSQL integer) holds

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
AttributeValue = str | int | float | bool | None | list[str | int | float]


def check_link(value: str) -> str:
    if value and not (value.startswith(("http://", "https://", "/")) and " " not in value):
        raise ValueError("must be an http(s) URL or a path starting with /")
    return value


class ProductIn(BaseModel):
    """A product as a shop sends it. Fields left out keep their stored value on update."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Sku
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    description: Annotated[str, StringConstraints(max_length=20_000)] = ""
    url: Annotated[str, StringConstraints(max_length=1000)] = ""
    image_url: Annotated[str, StringConstraints(max_length=1000)] = ""
    price: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217 code; the platform's default currency when absent."
    )
    category: Annotated[str, StringConstraints(max_length=500)] = Field(
        default="", description='Category path from the root, parts separated by " > ".'
    )
    brand: Annotated[str, StringConstraints(max_length=100)] = ""
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] | None = Field(
        default=None, description="Units in stock; null if not tracked."
    )
    in_stock: bool | None = Field(default=None, description="Derived from stock when absent.")
    is_active: bool = True

    @field_validator("url", "image_url")
    @classmethod
    def _check_links(cls, value: str) -> str:
        return check_link(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("category")
    @classmethod
    def _check_category(cls, value: str) -> str:
        if not value:
            return value
        parts = [part.strip() for part in value.split(">")]
        if any(not part for part in parts):
            raise ValueError('has an empty level; write levels as "Parent > Child"')
        if any(len(part) > 100 for part in parts):
            raise ValueError("has a level longer than 100 characters")
        return CATEGORY_SEPARATOR.join(parts)

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"has more than {MAX_ATTRIBUTES} keys")
        return value

    def resolved_in_stock(self, current: bool | None = None) -> bool:
        """``in_stock`` as given, else from ``stock``, else the current value (True for a new product)."""
        if self.in_stock is not None:
            return self.in_stock
        if self.stock is not None:
            return self.stock > 0
        return True if current is None else current


# The product fields every interface speaks (API, spreadsheets), in this order.
PRODUCT_FIELDS = list(ProductIn.model_fields)


@dataclass(frozen=True)
class RowError:
    index: int
    sku: str
    fields: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "sku": self.sku, "fields": self.fields}


@dataclass
class ValidatedRows:
    products: list[ProductIn] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def validate_product_rows(rows: Iterable[Any], *, first_index: int = 0) -> ValidatedRows:
    """Validate each row on its own. A SKU seen twice is refused the second time."""
    result = ValidatedRows()
    seen: set[str] = set()
    for index, row in enumerate(rows, start=first_index):
        sku = str(row.get("sku", "")).strip() if isinstance(row, Mapping) else ""
        if not isinstance(row, Mapping):
            result.errors.append(RowError(index, "", {"row": ["must be a JSON object"]}))
            continue
        try:
            product = ProductIn.model_validate(row)
        except ValidationError as exc:
            result.errors.append(RowError(index, sku, validation_error_fields(exc)))
            continue
        if product.sku in seen:
            result.errors.append(RowError(index, product.sku, {"sku": ["appears more than once in this batch"]}))
            continue
        seen.add(product.sku)
        result.products.append(product)
        result.indexes.append(index)
    return result


class ProductBatchIn(BaseModel):
    """The body of a catalog upsert: each row is validated on its own against ``ProductIn``."""

    products: list[ProductIn]


class SkuListIn(BaseModel):
    skus: Annotated[list[Sku], Field(min_length=1, max_length=10_000)]
