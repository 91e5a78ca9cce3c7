"""A small shop with a known history, for the tests of training and serving.

Two tastes: customers ``k0``, ``k1``, … (France) buy kitchen things, ``g0``, ``g1``, … (Germany)
garden things, three orders each over two months. ``K5`` and ``G5`` were never bought; ``X1`` is
a product of neither kind.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from consent.services import consent_bulk_import
from consent.subjects import Subject
from personalization.models import ModelVersion
from personalization.services import model_version_train
from tests.factories import CategoryFactory, ProductFactory
from tracking.services import CustomerIn, OrderIn, OrderLineIn, customer_bulk_upsert, order_bulk_record

LAST_ORDER = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KITCHEN = [f"K{i}" for i in range(1, 6)]
GARDEN = [f"G{i}" for i in range(1, 6)]
# Fast, single-threaded (so deterministic) settings for tests.
FAST: dict[str, Any] = {"lightfm": {"epochs": 10, "components": 8, "threads": 1, "description_words": 0}}


def build_shop(customers_per_taste: int = 8, *, consent: bool = True) -> list[str]:
    """Create the catalog and the orders; returns the customers' user ids."""
    kitchen = CategoryFactory.create(name="Kitchen", path="Kitchen")
    garden = CategoryFactory.create(name="Garden", path="Garden")
    for sku in KITCHEN:
        ProductFactory.create(sku=sku, name=f"Kitchen thing {sku}", category=kitchen)
    for sku in GARDEN:
        ProductFactory.create(sku=sku, name=f"Garden thing {sku}", category=garden)
    ProductFactory.create(sku="X1", name="Odd thing", category=None)
    users, orders = [], []
    for taste, skus, country in (("k", KITCHEN, "FR"), ("g", GARDEN, "DE")):
        for n in range(customers_per_taste):
            user = f"{taste}{n}"
            users.append(user)
            customer_bulk_upsert(customers=[CustomerIn(user, country)])
            for visit, days_before in enumerate((60, 30, 0)):
                bought = [skus[(n + visit + i) % 4] for i in range(2)]  # never the fifth
                orders.append(
                    OrderIn(
                        order_id=f"{user}-{visit}",
                        placed_at=LAST_ORDER - timedelta(days=days_before, hours=n),
                        user_id=user,
                        lines=[OrderLineIn(sku, sku, 1, Decimal("9.99")) for sku in bought],
                    )
                )
    # a guest order: nobody to ask for consent, so never trained on
    orders.append(
        OrderIn(
            order_id="guest-1",
            placed_at=LAST_ORDER,
            lines=[OrderLineIn("X1", "X1", 1, Decimal("1.00")), OrderLineIn("K1", "K1", 1, Decimal("9.99"))],
        )
    )
    order_bulk_record(orders=orders, origin="import")
    if consent:
        consent_bulk_import(subjects=[Subject(user_id=u) for u in users], purpose="personalization")
    return users


def train(commit: Callable[[Callable[[], ModelVersion]], ModelVersion], **params: Any) -> ModelVersion:
    """Train with the fast settings, committed (the active version's pointer is set on commit)."""
    return commit(lambda: model_version_train(trigger="test", params={**FAST, **params}))
