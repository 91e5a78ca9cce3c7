"""Most popular and trending items, overall and per country (pure: no Django).

Per category is a filter on these scores (the serving layer keeps the items of the category in
context), so one fitted model answers every category page.
"""

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from personalization.recommenders.base import Recommender, TrainingSet, Visitors


class Popular(Recommender):
    """Everyone gets the items with the most interactions, weighted by kind (a purchase counts
    more than a view), over the whole history. The baseline every shop starts from."""

    name = "popular"
    uses_history = False
    defaults: ClassVar[dict[str, Any]] = {}

    def fit(self, data: TrainingSet) -> Self:
        self.scores = np.bincount(data.interactions.items, weights=data.weights(None), minlength=data.n_items).astype(
            np.float64
        )
        return self

    def score(self, visitors: Visitors) -> np.ndarray:
        return np.tile(np.asarray(self.scores, dtype=np.float64), (len(visitors), 1))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.scores = arrays["scores"]


class Trending(Recommender):
    """What is popular now: interactions weighted by kind and halved every ``half_life_days``.

    Countries with at least ``min_country_users`` people get their own trend, blended with the
    overall one by ``country_weight``: a cold-start visitor from France sees what the French buy.
    """

    name = "trending"
    uses_history = False
    defaults: ClassVar[dict[str, Any]] = {"half_life_days": 7.0, "country_weight": 0.5, "min_country_users": 20}

    def fit(self, data: TrainingSet) -> Self:
        weights = data.weights(self.params["half_life_days"])
        items = data.interactions.items
        self.scores = self._normalised(np.bincount(items, weights=weights, minlength=data.n_items))
        countries = np.asarray(data.user_countries, dtype=str)
        users_per_country = {c: int(n) for c, n in zip(*np.unique(countries, return_counts=True), strict=True)}
        kept = sorted(c for c, n in users_per_country.items() if c and n >= self.params["min_country_users"])
        self.countries = np.asarray(kept, dtype=str)
        self.by_country = np.zeros((len(kept), data.n_items), dtype=np.float32)
        of_interaction = countries[data.interactions.users] if len(items) else np.zeros(0, dtype=str)
        for row, country in enumerate(kept):
            mine = of_interaction == country
            self.by_country[row] = self._normalised(
                np.bincount(items[mine], weights=weights[mine], minlength=data.n_items)
            )
        return self

    @staticmethod
    def _normalised(scores: np.ndarray) -> np.ndarray:
        largest = scores.max() if scores.size else 0.0
        return (scores / largest if largest > 0 else scores).astype(np.float32)

    def score(self, visitors: Visitors) -> np.ndarray:
        overall = np.asarray(self.scores, dtype=np.float64)
        result = np.tile(overall, (len(visitors), 1))
        if len(self.countries) == 0:
            return result
        index = {str(c): i for i, c in enumerate(self.countries)}
        weight = float(self.params["country_weight"])
        for position, country in enumerate(visitors.countries):
            row = index.get(country or "")
            if row is not None:
                result[position] = (1 - weight) * overall + weight * self.by_country[row]
        return result

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores, "countries": self.countries, "by_country": self.by_country}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.scores, self.countries, self.by_country = arrays["scores"], arrays["countries"], arrays["by_country"]
