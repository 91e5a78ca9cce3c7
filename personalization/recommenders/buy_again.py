"""Buy again: what a customer rebuys, and when (pure: no Django).

A shop's wholesalers and regulars reorder the same things. For each customer and item this keeps
how often they bought it (each order halved every ``half_life_days``, so old habits fade) and when
they last did; for each item, its repurchase cycle: the median number of days between two orders
of it by the same customer (items with fewer than ``min_cycles`` such gaps take the median over
all items). An item is then scored by how often it is bought, raised by ``timing_weight`` when it
is due: the bump ``exp(-ln(elapsed / cycle)² / 2σ²)`` is 1 when as many days have passed since the
last order as the cycle says, and fades both before (just bought) and long after (lost interest).
"""

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import DAY, PURCHASE, Recommender, TrainingSet, Visitors, csr_arrays, csr_from

_SPREAD = 0.75  # σ of the bump, in natural-log units of elapsed / cycle


class BuyAgain(Recommender):
    name = "buy_again"
    defaults: ClassVar[dict[str, Any]] = {"half_life_days": 90.0, "timing_weight": 0.5, "min_cycles": 3}
    user_arrays = {"frequency_data": "frequency", "last_data": "frequency"}

    def fit(self, data: TrainingSet) -> Self:
        interactions = data.interactions
        mask = interactions.kinds == PURCHASE
        users, items = interactions.users[mask], interactions.items[mask]
        # One purchase per (person, item, order): the lines of one order count once.
        days = np.floor(interactions.times[mask] / DAY * 1000) / 1000
        keys = np.unique(np.stack([users, items, interactions.baskets[mask], days]).T, axis=0)
        users, items, days = keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64), keys[:, 3]
        age = np.maximum(data.as_of / DAY - days, 0.0)
        decayed = np.power(0.5, age / float(self.params["half_life_days"]))
        shape = (data.n_users, data.n_items)
        frequency = sp.csr_matrix((decayed, (users, items)), shape=shape)
        frequency.sum_duplicates()  # canonical: by user, then item, as the lexsort below
        order = np.lexsort((days, items, users))
        pair_end = np.r_[np.flatnonzero(np.diff(users[order] * data.n_items + items[order])), len(order) - 1]
        last_days = days[order][pair_end] if len(order) else np.zeros(0)
        self.frequency = frequency
        self.last = sp.csr_matrix((last_days, frequency.indices, frequency.indptr), shape=shape)
        self.cycles = self._cycles(users[order], items[order], days[order], data.n_items)
        self.fitted_at = np.array([data.as_of])
        return self

    def _cycles(self, users: np.ndarray, items: np.ndarray, days: np.ndarray, n_items: int) -> np.ndarray:
        """The median days between two orders of each item by the same person (sorted input)."""
        same_pair = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
        gaps, gap_items = np.diff(days)[same_pair], items[1:][same_pair]
        gaps_positive = gaps > 0
        gaps, gap_items = gaps[gaps_positive], gap_items[gaps_positive]
        overall = float(np.median(gaps)) if gaps.size else 30.0
        cycles = np.full(n_items, overall, dtype=np.float64)
        if gaps.size:
            order = np.argsort(gap_items, kind="stable")
            gap_items, gaps = gap_items[order], gaps[order]
            starts = np.r_[0, np.flatnonzero(np.diff(gap_items)) + 1]
            ends = np.r_[starts[1:], len(gap_items)]
            for start, end in zip(starts, ends, strict=True):
                if end - start >= int(self.params["min_cycles"]):
                    cycles[gap_items[start]] = float(np.median(gaps[start:end]))
        return cycles

    def score(self, visitors: Visitors) -> np.ndarray:
        result = np.zeros((len(visitors), self.frequency.shape[1]), dtype=np.float64)
        known = np.flatnonzero(visitors.rows >= 0)
        if known.size == 0:
            return result
        now = (visitors.now if visitors.now is not None else float(self.fitted_at[0])) / DAY
        weight = float(self.params["timing_weight"])
        # Each person's row read straight from the arrays (``last`` shares ``frequency``'s
        # structure): slicing the matrices built two sparse matrices per batch, most of the cost
        # when one visitor is served.
        indptr, indices = self.frequency.indptr, self.frequency.indices
        for position, row in zip(known.tolist(), visitors.rows[known].tolist(), strict=True):
            start, end = int(indptr[row]), int(indptr[row + 1])
            if start == end:
                continue
            items = indices[start:end]
            elapsed = np.maximum(now - np.asarray(self.last.data[start:end], dtype=np.float64), 0.5)
            due = np.exp(-np.square(np.log(elapsed / self.cycles[items])) / (2 * _SPREAD**2))
            result[position, items] = np.asarray(self.frequency.data[start:end]) * (1.0 + weight * due)
        return result

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **csr_arrays("frequency", self.frequency),
            "last_data": np.asarray(self.last.data, dtype=np.float64),
            "cycles": self.cycles,
            "fitted_at": self.fitted_at,
        }

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.frequency = csr_from("frequency", arrays)
        self.last = sp.csr_matrix(
            (arrays["last_data"], self.frequency.indices, self.frequency.indptr), shape=self.frequency.shape, copy=False
        )
        self.cycles, self.fitted_at = arrays["cycles"], arrays["fitted_at"]
