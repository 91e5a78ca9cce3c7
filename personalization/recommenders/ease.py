"""Item-to-item regression (EASE: Steck, "Embarrassingly Shallow Autoencoders", WWW 2019) (pure).

Each item's column of the user × item matrix is predicted from all the other items' columns by
ridge regression (its penalty ``l2`` is relative to the mean of XᵀX's diagonal, so it does not
depend on the scale of the interaction weights); the weights ``B`` (items × items, zero diagonal) have a closed form,
``B = I - P · diag(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``, and a visitor's scores are their
history times ``B``. Unlike co-occurrence, the regression explains away what other items already
account for, which is why it ranks better than any normalisation of counts; the cost is one dense
inversion of an items × items matrix, so it is fitted only up to ``max_items`` items (``fit``
raises ``TooManyItems`` above that, and the pipeline leaves it out).

Interactions are decayed (``half_life_days``) so that recent habits weigh more. ``neighbours``
> 0 keeps only that many weights per item (by magnitude) for large catalogs; 0 keeps them all.
"""

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import (
    ItemToItem,
    TrainingSet,
    Visitors,
    csr_arrays,
    csr_from,
    query_vectors,
    top_k_per_row,
)


class TooManyItems(ValueError):
    pass


class ItemRegression(ItemToItem):
    name = "ease"
    defaults: ClassVar[dict[str, Any]] = {
        "l2": 5.0,
        "half_life_days": 90.0,
        "neighbours": 0,
        "max_items": 12_000,
        "session_weight": 1.0,
    }

    def fit(self, data: TrainingSet) -> Self:
        if data.n_items > int(self.params["max_items"]):
            raise TooManyItems(f"{data.n_items} items: the item regression is fitted up to {self.params['max_items']}")
        matrix = data.user_items(self.params["half_life_days"], binary=False)
        gram = np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)
        diagonal = np.diag_indices(data.n_items)
        gram[diagonal] += float(self.params["l2"]) * max(float(gram[diagonal].mean()), 1e-9)
        inverse = np.linalg.inv(gram)
        weights = inverse / (-np.diag(inverse))
        weights[diagonal] = 0.0
        neighbours = int(self.params["neighbours"])
        self.weights: np.ndarray | sp.csr_matrix = (
            top_k_per_row(weights, neighbours, by_magnitude=True) if neighbours > 0 else weights.astype(np.float32)
        )
        return self

    def score(self, visitors: Visitors) -> np.ndarray:
        query = query_vectors(visitors, float(self.params["session_weight"]))
        if query.shape[0] == 1 and not sp.issparse(self.weights):
            # One visitor served: the weighted sum of the rows of their items, in the weights'
            # precision, by BLAS (a third of the sparse product's time; the float32 sums may round
            # the last bit differently).
            rows = np.asarray(self.weights)[query.indices]
            return np.asarray(np.asarray(query.data, dtype=rows.dtype) @ rows, dtype=np.float64)[None, :]
        # In the weights' own precision: a float64 query would copy the whole float32 matrix.
        scores = query.astype(self.weights.dtype) @ self.weights
        return np.asarray(scores.toarray() if sp.issparse(scores) else scores, dtype=np.float64)

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if sp.issparse(self.weights):
            row = np.asarray(self.weights[item].toarray(), dtype=np.float64).ravel()
        else:
            row = np.array(self.weights[item], dtype=np.float64)
        row[item] = 0.0
        positive = np.flatnonzero(row > 0)
        order = np.lexsort((positive, -row[positive]))[:k]
        return positive[order].astype(np.int64), row[positive[order]]

    def arrays(self) -> dict[str, np.ndarray]:
        if sp.issparse(self.weights):
            return csr_arrays("weights", sp.csr_matrix(self.weights))
        return {"weights": np.asarray(self.weights)}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.weights = arrays["weights"] if "weights" in arrays else csr_from("weights", arrays)
