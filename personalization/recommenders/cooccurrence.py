"""Items that go together: "bought together" from orders, "viewed together" from sessions (pure).

Raw co-occurrence counts favour bestsellers: everything is bought with the bestseller. The count
of baskets holding both items is therefore divided by their popularities,
``c(i, j) / (n(i)^alpha · n(j)^(1 - alpha) + shrink)``: ``alpha = 0.5`` is the cosine,
``shrink`` discounts pairs seen in only a few baskets. A visitor is scored by the items that go
with what they bought, added and viewed.
"""

from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import (
    ADD,
    PURCHASE,
    VIEW,
    ItemSimilarity,
    TrainingSet,
    top_k_rows_in_chunks,
)


def basket_items(data: TrainingSet, kinds: tuple[int, ...], half_life_days: float | None) -> sp.csr_matrix:
    """Baskets × items: 1 (decayed to ``as_of`` when a half-life is given) where the item is in the basket."""
    interactions = data.interactions
    mask = np.isin(interactions.kinds, kinds) & (interactions.baskets >= 0)
    baskets, basket_rows = np.unique(interactions.baskets[mask], return_inverse=True)
    if half_life_days:
        age = np.maximum(data.as_of - interactions.times[mask], 0.0) / 86_400.0
        values = np.power(0.5, age / half_life_days)
    else:
        values = np.ones(int(mask.sum()))
    matrix = sp.csr_matrix((values, (basket_rows, interactions.items[mask])), shape=(len(baskets), data.n_items))
    matrix.sum_duplicates()
    matrix.data = np.minimum(matrix.data, 1.0)  # an item twice in a basket is still one basket
    return matrix


class CoOccurrence(ItemSimilarity):
    kinds: ClassVar[tuple[int, ...]]
    defaults: ClassVar[dict[str, Any]] = {
        "neighbours": 100,
        "alpha": 0.5,
        "shrink": 2.0,
        "half_life_days": None,
        "session_weight": 1.0,
    }

    def fit(self, data: TrainingSet) -> Self:
        baskets = basket_items(data, self.kinds, self.params["half_life_days"])
        counts = np.asarray(baskets.sum(axis=0)).ravel()
        alpha, shrink = float(self.params["alpha"]), float(self.params["shrink"])
        row_norm, column_norm = np.power(counts, alpha), np.power(counts, 1.0 - alpha)

        def normalised(block: np.ndarray, start: int) -> np.ndarray:
            denominator = row_norm[start : start + block.shape[0], None] * column_norm[None, :] + shrink
            return block / np.where(denominator > 0, denominator, 1.0)

        self.similarity = top_k_rows_in_chunks(
            sp.csr_matrix(baskets.T), baskets, int(self.params["neighbours"]), transform=normalised
        )
        return self


class BoughtTogether(CoOccurrence):
    """Items in the same orders."""

    name = "bought_together"
    kinds = (PURCHASE,)


class ViewedTogether(CoOccurrence):
    """Items viewed or added to the cart in the same browsing session (on a shop without page
    views, such as an order history, the lines of one order are its session)."""

    name = "viewed_together"
    kinds = (VIEW, ADD, PURCHASE)
