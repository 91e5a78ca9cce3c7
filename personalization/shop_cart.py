"""The demo shop's cart, kept in the visitor's session as ``{sku: quantity}``."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from personalization.models import Product
from personalization.selectors import products_by_skus

SESSION_KEY = "pz_cart"
MAX_QUANTITY = 999


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    def __init__(self, session: SessionBase) -> None:
        self.session = session
        self.items: dict[str, int] = dict(session.get(SESSION_KEY, {}))

    def _save(self) -> None:
        self.session[SESSION_KEY] = self.items

    def set(self, sku: str, quantity: int) -> None:
        """Set a line's quantity (0 removes it), within 0..MAX_QUANTITY."""
        quantity = max(0, min(quantity, MAX_QUANTITY))
        if quantity:
            self.items[sku] = quantity
        else:
            self.items.pop(sku, None)
        self._save()

    def add(self, sku: str, quantity: int) -> None:
        self.set(sku, self.items.get(sku, 0) + quantity)

    def clear(self) -> None:
        self.items = {}
        self._save()

    @property
    def count(self) -> int:
        return sum(self.items.values())

    def lines(self) -> list[CartLine]:
        """Lines of products still for sale; others are dropped from the cart."""
        products = products_by_skus(self.items)
        lines = [
            CartLine(products[sku], quantity)
            for sku, quantity in self.items.items()
            if sku in products and products[sku].is_active
        ]
        if len(lines) != len(self.items):
            self.items = {line.product.sku: line.quantity for line in lines}
            self._save()
        return lines
