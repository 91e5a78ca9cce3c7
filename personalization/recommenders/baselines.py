"""Baselines the evaluation compares against (pure: no Django): implicit ALS.

``implicit`` is an evaluation dependency (requirements-dev), not a serving one: the shop never
serves from it, it is the yardstick a data scientist would reach for first. Most popular and
LightFM without features are ``Popular`` and ``LightFMHybrid(features=False)``.
"""

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from personalization.recommenders.base import Recommender, TrainingSet, Visitors


class ImplicitALS(Recommender):
    """Alternating least squares for implicit feedback (Hu, Koren and Volinsky, 2008), as the
    ``implicit`` library fits it, on the user × item matrix of kind-weighted interactions (counted
    in purchases), or on a binary one (``binary``)."""

    name = "als"
    defaults: ClassVar[dict[str, Any]] = {
        "factors": 64,
        "regularization": 0.01,
        "alpha": 1.0,
        "iterations": 15,
        "half_life_days": None,
        "binary": False,
        "seed": 0,
    }

    def fit(self, data: TrainingSet) -> Self:
        from implicit.als import AlternatingLeastSquares  # an evaluation dependency only
        from threadpoolctl import threadpool_limits

        if self.params["binary"]:
            matrix = data.user_items(binary=True)
        else:  # in purchases: a purchase counts 1, a view its share of one
            matrix = data.user_items(self.params["half_life_days"]) / max(max(data.kind_weights.values()), 1e-9)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads would fight it
            model = AlternatingLeastSquares(
                factors=int(self.params["factors"]),
                regularization=float(self.params["regularization"]),
                alpha=float(self.params["alpha"]),
                iterations=int(self.params["iterations"]),
                random_state=int(self.params["seed"]),
            )
            model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, visitors: Visitors) -> np.ndarray:
        result = np.zeros((len(visitors), self.item_factors.shape[0]), dtype=np.float64)
        known = visitors.rows >= 0
        result[known] = self.user_factors[visitors.rows[known]] @ self.item_factors.T
        return result

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]
