"""The blend the shop serves as "personalized": every recommender's opinion, weighed (pure).

Each component's scores are scaled per visitor to [-1, 1] and summed with its weight. There are
two sets of weights, tuned on held-out data: ``repeat`` for lists that may show what the visitor
already bought (buy-again weighs a lot for a wholesaler's reorder) and ``new_items`` for lists
that may not (discovery). ``Visitors.new_items_only`` picks one.

Then the live re-rank: the categories and brands of what the visitor did just now and before
(``Visitors.session`` and ``history``) lift the items of those categories and brands by
``affinity_weight``. Components see the session too (each its own way: item-to-item models
through the items' neighbours, LightFM through their embeddings), so a product view changes the
next list at once, for an anonymous visitor as well.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import Recommender, TrainingSet, Visitors, query_vectors, scaled

MODES = ("repeat", "new_items")


def _one_hot(values: np.ndarray) -> sp.csr_matrix:
    """Items × distinct values (-1: none)."""
    known = values >= 0
    size = int(values.max()) + 1 if known.any() else 0
    rows = np.flatnonzero(known)
    return sp.csr_matrix((np.ones(rows.size), (rows, values[known])), shape=(values.size, size))


def _codes(labels: list[str] | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=str)
    codes = np.full(labels.size, -1, dtype=np.int64)
    present = labels != ""
    if present.any():
        _, codes[present] = np.unique(labels[present], return_inverse=True)
    return codes


class Hybrid(Recommender):
    name = "hybrid"
    defaults: ClassVar[dict[str, Any]] = {
        "weights": {mode: {} for mode in MODES},
        "affinity_weight": 0.0,
        "session_weight": 1.0,
    }

    def __init__(self, components: Mapping[str, Recommender] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.components: dict[str, Recommender] = dict(components or {})

    def fit(self, data: TrainingSet) -> Self:
        for component in self.components.values():
            component.fit(data)
        self.fit_affinities(data)
        return self

    def fit_affinities(self, data: TrainingSet) -> None:
        self.item_categories = _codes(list(data.items.categories))
        self.item_brands = _codes([brand.lower() for brand in data.items.brands])

    def score(self, visitors: Visitors) -> np.ndarray:
        contributions = self.contributions(visitors)
        total = np.zeros((len(visitors), len(self.item_categories)), dtype=np.float64)
        for part in contributions.values():
            total += part
        return total

    def contributions(self, visitors: Visitors) -> dict[str, np.ndarray]:
        """Each weighed part of the score (they sum to it): why an item is where it is."""
        weights = self.params["weights"]["new_items" if visitors.new_items_only else "repeat"]
        parts = {}
        for name, component in self.components.items():
            weight = float(weights.get(name, 0.0))
            if weight:
                parts[name] = weight * scaled(component.score(visitors))
        affinity_weight = float(self.params["affinity_weight"])
        if affinity_weight:
            parts["affinity"] = affinity_weight * self.affinities(visitors)
        return parts

    def affinities(self, visitors: Visitors) -> np.ndarray:
        """How much each item's category and brand are among the visitor's, in [0, 1]."""
        query = query_vectors(visitors, float(self.params["session_weight"]))
        result = np.zeros(query.shape, dtype=np.float64)
        for codes in (self.item_categories, self.item_brands):
            one_hot = _one_hot(np.asarray(codes))
            if one_hot.shape[1] == 0:
                continue
            per_value = np.asarray((query @ one_hot).toarray())
            result += scaled(np.asarray(one_hot @ per_value.T).T) / 2
        return result

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_categories": self.item_categories, "item_brands": self.item_brands}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.item_categories, self.item_brands = arrays["item_categories"], arrays["item_brands"]

    def save(self, directory: Path) -> None:
        super().save(directory)
        for name, component in self.components.items():
            component.save(directory / name)
        (directory / "components.json").write_text(json.dumps(sorted(self.components)))

    @classmethod
    def load(cls, directory: Path) -> Self:
        from personalization.recommenders import RECOMMENDERS

        hybrid = super().load(directory)
        for name in json.loads((directory / "components.json").read_text()):
            hybrid.components[name] = RECOMMENDERS[name].load(directory / name)
        return hybrid
