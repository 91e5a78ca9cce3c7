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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import (
    Recommender,
    TrainingSet,
    Visitors,
    derived,
    query_vectors,
    scaled,
    top_k,
)

MODES = ("repeat", "new_items")


def _one_hot(values: np.ndarray) -> sp.csr_matrix:
    """Items × distinct values (-1: none)."""
    known = values >= 0
    size = int(values.max()) + 1 if known.any() else 0
    rows = np.flatnonzero(known)
    return sp.csr_matrix((np.ones(rows.size), (rows, values[known])), shape=(values.size, size))


def leading_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For contributions stacked on the first axis (parts × …): the leading part of each entry (the
    first on a tie) and its share of the positive parts, rounded to 3 places (1.0 if none is)."""
    best = values.argmax(axis=0)
    totals = np.where(values > 0, values, 0.0).sum(axis=0)
    leading = np.take_along_axis(values, best[None], axis=0)[0]
    positive = totals > 0
    return best, np.round(np.where(positive, leading / np.where(positive, totals, 1.0), 1.0), 3)


@dataclass(frozen=True)
class TopLists:
    """Each known person's best items with no session, as of the fit (``Hybrid.top_lists``): item
    rows best first, their scores, and the leading part of each score with its share in
    thousandths (an index into ``parts``)."""

    parts: list[str]
    rows: np.ndarray  # int32, people × n
    scores: np.ndarray  # float64
    leading: np.ndarray  # int8
    shares: np.ndarray  # int16, thousandths

    def one(self, index: int) -> "TopLists":
        """The list of the ``index``-th person (arrays of one dimension)."""
        return TopLists(self.parts, self.rows[index], self.scores[index], self.leading[index], self.shares[index])


def _one_row_affinity(query: sp.csr_matrix, codes: np.ndarray, n_values: int) -> np.ndarray:
    """``one_hot @ (query @ one_hot).T`` for a 1 × n query: each item gets the query's total over
    the items that share its value (0 for items without one), summed in the same order."""
    item_codes = codes[query.indices]
    valid = item_codes >= 0
    per_value = np.bincount(item_codes[valid], weights=np.asarray(query.data)[valid], minlength=n_values)
    return np.where(codes >= 0, per_value[np.maximum(codes, 0)], 0.0)[None, :]


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

    def top_lists(
        self, history: sp.csr_matrix, countries: np.ndarray, n: int, *, chunk: int = 512, repeat: bool = True
    ) -> TopLists:
        """Every person's ``n`` best items when nothing is known of their session: what serving
        answers a returning customer with, until their first view or cart of the visit (``repeat``:
        the weights of lists that may show what they bought before)."""
        n_users, n_items = history.shape
        n = min(n, n_items)
        rows = np.zeros((n_users, n), dtype=np.int32)
        scores = np.zeros((n_users, n), dtype=np.float64)
        leading = np.zeros((n_users, n), dtype=np.int8)
        shares = np.zeros((n_users, n), dtype=np.int16)
        names: list[str] = []
        for start in range(0, n_users, chunk):
            end = min(start + chunk, n_users)
            visitors = Visitors(
                rows=np.arange(start, end),
                history=sp.csr_matrix(history[start:end]),
                session=sp.csr_matrix((end - start, n_items)),
                countries=[str(c) for c in countries[start:end]],
                new_items_only=not repeat,
            )
            best = self.best(visitors, n)
            names = best.parts
            rows[start:end], scores[start:end] = best.rows, best.scores
            leading[start:end], shares[start:end] = best.leading, best.shares
        return TopLists(names, rows, scores, leading, shares)

    def best(self, visitors: Visitors, n: int) -> TopLists:
        """The visitors' ``n`` best items each (not filtered by anything), with the leading part of
        each score: what ``top_lists`` keeps for the people of the fit, and what
        ``personalization.session_lists`` keeps for visitors in the middle of a session."""
        n = min(n, len(self.item_categories))
        parts = self.contributions(visitors)
        total = sum(parts.values(), np.zeros((len(visitors), len(self.item_categories))))
        best = np.stack([top_k(row, n) for row in total]).astype(np.int32)
        stacked = np.stack([np.take_along_axis(part, best, axis=1) for part in parts.values()])
        part, share = leading_parts(stacked)
        return TopLists(
            list(parts),
            best,
            np.take_along_axis(total, best, axis=1),
            part.astype(np.int8),
            np.rint(share * 1000).astype(np.int16),
        )

    def affinities(self, visitors: Visitors) -> np.ndarray:
        """How much each item's category and brand are among the visitor's, in [0, 1]."""
        query = query_vectors(visitors, float(self.params["session_weight"]))
        result = np.zeros(query.shape, dtype=np.float64)
        for name, codes in (("categories", self.item_categories), ("brands", self.item_brands)):
            one_hot = derived(self, name, codes, partial(_one_hot, np.asarray(codes)))
            if one_hot.shape[1] == 0:
                continue
            if query.shape[0] == 1:  # one visitor served: the same sums, without two sparse products
                result += scaled(_one_row_affinity(query, np.asarray(codes), one_hot.shape[1])) / 2
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
