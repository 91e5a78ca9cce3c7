"""The data every recommender learns from, the visitors it scores, and the interface they share.

Pure module: NumPy and SciPy only, no Django. Users and items are row numbers here; the Django
side (``personalization.training``) maps people and products to rows and back.

A recommender is fitted once on a ``TrainingSet``, saved to a directory of NumPy files (read back
memory-mapped, so several serving processes share one copy), and scores ``Visitors`` in batches:
one row of scores per visitor, one column per item, higher is better. Evaluation scores thousands
of visitors at once; serving scores one.
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

DAY = 86_400.0
CATEGORY_SEPARATOR = " > "

VIEW, ADD, PURCHASE = 0, 1, 2
KIND_NAMES = {VIEW: "view", ADD: "add", PURCHASE: "purchase"}
DEFAULT_KIND_WEIGHTS = {"view": 1.0, "add": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class Interactions:
    """One row per interaction: a product view, an add to cart, or a purchased order line.

    ``baskets`` groups interactions that happened together (an order, a browsing session), for
    "bought together" and "viewed together"; -1 where there is none.
    """

    users: np.ndarray  # int32 user rows
    items: np.ndarray  # int32 item rows
    kinds: np.ndarray  # int8: VIEW, ADD or PURCHASE
    times: np.ndarray  # float64 epoch seconds
    baskets: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def select(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.users[mask], self.items[mask], self.kinds[mask], self.times[mask], self.baskets[mask])

    @classmethod
    def empty(cls) -> "Interactions":
        return cls(
            np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0), np.zeros(0, np.int64)
        )


@dataclass(frozen=True)
class ItemSide:
    """What the catalog says of each item, aligned with the item rows."""

    texts: Sequence[str]  # name and description
    categories: Sequence[str]  # the category path, "" if none
    brands: Sequence[str]
    tags: Sequence[Sequence[str]]
    prices: np.ndarray  # float64, NaN when unknown

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TrainingSet:
    """Interactions up to ``as_of``, with what is known of the items and the users.

    ``kind_weights`` says how much a view, an add to cart and a purchase say about a person's
    interest; every interaction's weight also halves every ``half_life_days`` before ``as_of``.
    """

    interactions: Interactions
    items: ItemSide
    user_countries: Sequence[str]
    as_of: float
    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))

    @property
    def n_users(self) -> int:
        return len(self.user_countries)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def weights(self, half_life_days: float | None) -> np.ndarray:
        """The weight of each interaction: its kind's weight, decayed to ``as_of``."""
        by_kind = np.array([self.kind_weights.get(KIND_NAMES[k], 0.0) for k in sorted(KIND_NAMES)])
        weights = by_kind[self.interactions.kinds]
        if half_life_days:
            age = np.maximum(self.as_of - self.interactions.times, 0.0) / DAY
            weights = weights * np.power(0.5, age / half_life_days)
        return np.asarray(weights, dtype=np.float64)

    def user_items(self, half_life_days: float | None = None, *, binary: bool = False) -> sp.csr_matrix:
        """Users × items: the summed (decayed) weights of each person's interactions with each item."""
        data = np.ones(len(self.interactions)) if binary else self.weights(half_life_days)
        matrix = sp.csr_matrix(
            (data, (self.interactions.users, self.interactions.items)), shape=(self.n_users, self.n_items)
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def until(self, cutoff: float) -> "TrainingSet":
        """The same people and items, with only what happened before ``cutoff`` (which becomes ``as_of``)."""
        return replace(self, interactions=self.interactions.select(self.interactions.times < cutoff), as_of=cutoff)


@dataclass(frozen=True)
class Visitors:
    """A batch of visitors to score.

    ``rows`` are their user rows in the training set (-1 for someone the model has not seen);
    ``history`` is what the model knows they did (decayed weights, visitors × items); ``session``
    is what they did just now (recent views and cart, newest strongest), which the model did not
    see when it was fitted.
    """

    rows: np.ndarray
    history: sp.csr_matrix
    session: sp.csr_matrix
    countries: Sequence[str]
    now: float | None = None  # epoch seconds; None: as of the fit
    new_items_only: bool = False  # what they already bought will not be shown (blends weigh differently)
    queries: dict[float, sp.csr_matrix] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def without_session(self) -> "Visitors":
        return replace(self, session=sp.csr_matrix(self.session.shape, dtype=np.float64), queries={})


def row_normalized(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its largest absolute value (rows of zeros stay zero).

    Computed on the CSR arrays directly: scipy's ``diags(1 / max) @ matrix`` builds four sparse
    matrices per call, which cost more than all the scoring when one visitor is served."""
    if not isinstance(matrix, sp.csr_matrix):
        matrix = sp.csr_matrix(matrix)
    data = np.abs(np.asarray(matrix.data, dtype=np.float64))
    if data.size == 0:
        return sp.csr_matrix(matrix.shape, dtype=np.float64)
    counts = np.diff(matrix.indptr)
    filled = counts > 0
    largest = np.ones(matrix.shape[0])
    largest[filled] = np.maximum.reduceat(data, matrix.indptr[:-1][filled])
    largest[largest == 0] = 1.0
    values = np.asarray(matrix.data, dtype=np.float64) / np.repeat(largest, counts)
    return sp.csr_matrix((values, matrix.indices, matrix.indptr), shape=matrix.shape)


def query_vectors(visitors: Visitors, session_weight: float) -> sp.csr_matrix:
    """History and session as one query per visitor: each scaled to at most 1, the session
    weighted by ``session_weight``. Computed once per batch and weight (components share it)."""
    cached = visitors.queries.get(session_weight)
    if cached is not None:
        return cached
    query = row_normalized(visitors.history)
    if session_weight and visitors.session.nnz:
        session = row_normalized(visitors.session)
        # One visitor served: the sum on the arrays, as scipy sums it (4× cheaper).
        one = len(visitors) == 1
        query = _one_row_sum(query, session, session_weight) if one else query + session_weight * session
    if not isinstance(query, sp.csr_matrix):
        query = sp.csr_matrix(query)
    visitors.queries[session_weight] = query
    return query


def _one_row_sum(left: sp.csr_matrix, right: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """``left + weight * right`` for two 1 × n matrices: the same values (each entry's two terms
    added in the same order) and the same structure (sorted indices, no explicit zeros)."""
    indices = np.concatenate([left.indices, right.indices])
    values = np.concatenate([np.asarray(left.data, dtype=np.float64), weight * np.asarray(right.data)])
    order = np.argsort(indices, kind="stable")
    indices, values = indices[order], values[order]
    starts = np.flatnonzero(np.r_[True, indices[1:] != indices[:-1]])
    summed = np.add.reduceat(values, starts) if values.size else values
    kept = summed != 0
    columns = indices[starts][kept]
    return sp.csr_matrix((summed[kept], columns, np.array([0, columns.size])), shape=left.shape)


def one_row(matrix: sp.csr_matrix, row: int) -> sp.csr_matrix:
    """Row ``row`` of a CSR matrix as a 1 × n matrix, sliced from its arrays: the same matrix as
    ``matrix[row]`` (sorted indices stay sorted) for a tenth of scipy's indexing time."""
    start, end = int(matrix.indptr[row]), int(matrix.indptr[row + 1])
    indptr = np.array([0, end - start], dtype=matrix.indptr.dtype)
    data, indices = np.asarray(matrix.data[start:end]), np.asarray(matrix.indices[start:end])
    return sp.csr_matrix((data, indices, indptr), shape=(1, matrix.shape[1]), copy=False)


def scaled(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its largest absolute value, so components of a blend are comparable."""
    scores = np.asarray(scores, dtype=np.float64)
    largest = np.abs(scores).max(axis=1, keepdims=True) if scores.size else np.ones((scores.shape[0], 1))
    return scores / np.where(largest > 0, largest, 1.0)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` highest scores, best first (ties: the lower index)."""
    k = min(k, scores.shape[-1])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[-1] else np.arange(scores.shape[-1])
    order = np.lexsort((candidates, -scores[candidates]))
    return np.asarray(candidates[order], dtype=np.int64)


def derived(owner: object, name: str, source: object, build: Callable[[], Any]) -> Any:
    """``build()``, kept on ``owner`` as long as ``source`` is the same object: what scoring derives
    from a fitted model's arrays (a dense copy, an index), built once per fit or load rather than
    once per visitor served. Two threads may both build it once; either result is the same."""
    kept: dict[str, tuple[object, Any]] = owner.__dict__.setdefault("_derived", {})
    hit = kept.get(name)
    if hit is not None and hit[0] is source:
        return hit[1]
    value = build()
    kept[name] = (source, value)
    return value


class Recommender(ABC):
    """Fitted on a training set, saved as files, scores batches of visitors.

    ``params`` are the hyper-parameters (JSON values); ``defaults`` lists every one of them.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    uses_history: ClassVar[bool] = True  # False: the same scores for everyone (popularity, trending)

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameters {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.defaults, **params}

    @abstractmethod
    def fit(self, data: TrainingSet) -> Self: ...

    @abstractmethod
    def score(self, visitors: Visitors) -> np.ndarray:
        """Scores, visitors × items (float64); higher is better."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """What ``save`` writes: the fitted state as named arrays."""

    @abstractmethod
    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Take back the state ``arrays`` returned."""

    user_arrays: ClassVar[dict[str, str]] = {}
    """The arrays that hold something per person (personal data), by name: "" for a dense array
    whose rows are people, or the prefix of the CSR matrix whose row ranges they follow."""

    @classmethod
    def erase_rows(cls, directory: Path, rows: Sequence[int]) -> None:
        """Zero the people's rows in a saved recommender's files (each file replaced whole)."""
        wanted = np.asarray(sorted(rows), dtype=np.int64)
        for name, csr_prefix in cls.user_arrays.items():
            path = directory / f"{name}.npy"
            array = np.array(np.load(path, allow_pickle=False))
            if csr_prefix:
                indptr = np.load(directory / f"{csr_prefix}_indptr.npy", allow_pickle=False)
                for row in wanted:
                    array[indptr[row] : indptr[row + 1]] = 0
            else:
                array[wanted] = 0
            replace_file(path, array)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for key, array in self.arrays().items():
            np.save(directory / f"{key}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (directory / "params.json").write_text(json.dumps(self.params, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a saved recommender; its arrays are memory-mapped, shared by every process."""
        params = json.loads((directory / "params.json").read_text())
        recommender = cls(**params)
        arrays = {path.stem: mapped(path) for path in sorted(directory.glob("*.npy"))}
        recommender.restore(arrays)
        return recommender


class ItemToItem(Recommender):
    """A recommender that also answers "items like this one" (similar, bought or viewed together)."""

    @abstractmethod
    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most related to ``item``, best first, and their scores."""


class ItemSimilarity(ItemToItem):
    """An item-to-item model that is one sparse items × items matrix (content, co-occurrence):
    a visitor's scores are their history and session times it."""

    similarity: sp.csr_matrix

    def score(self, visitors: Visitors) -> np.ndarray:
        query = query_vectors(visitors, float(self.params["session_weight"]))
        return np.asarray((query @ self.similarity).toarray(), dtype=np.float64)

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return neighbours_from_row(self.similarity, item, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays("similarity", self.similarity)

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.similarity = csr_from("similarity", arrays)


def mapped(path: Path) -> np.ndarray:
    """A saved array, memory-mapped (shared by every process), as a plain ndarray over the map:
    indexing a ``np.memmap`` builds a memmap object for every slice, which serving does a dozen
    times a request."""
    array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)
    return array


def replace_file(path: Path, array: np.ndarray) -> None:
    """Write an array over an existing file atomically: readers that memory-mapped the old file
    keep reading it whole until they load again."""
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, array, allow_pickle=False)
    partial.replace(path)


def csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A sparse matrix as plain arrays, for ``np.save``."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": matrix.data.astype(np.float32),
        f"{prefix}_indices": matrix.indices.astype(np.int32),
        f"{prefix}_indptr": matrix.indptr.astype(np.int64),
        f"{prefix}_shape": np.array(matrix.shape, dtype=np.int64),
    }


def csr_from(prefix: str, arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape, copy=False
    )


def top_k_per_row(matrix: np.ndarray | sp.spmatrix, k: int, *, by_magnitude: bool = False) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (by absolute value with ``by_magnitude``)."""
    dense = np.asarray(matrix.toarray()) if isinstance(matrix, sp.spmatrix | sp.sparray) else np.asarray(matrix)
    n_rows, n_cols = dense.shape
    k = min(k, n_cols)
    if k <= 0 or n_rows == 0:
        return sp.csr_matrix((n_rows, n_cols))
    key = np.abs(dense) if by_magnitude else dense
    columns = np.argpartition(-key, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n_rows), k)
    values = dense[rows, columns.ravel()]
    kept = values != 0
    result = sp.csr_matrix((values[kept], (rows[kept], columns.ravel()[kept])), shape=(n_rows, n_cols))
    result.sort_indices()
    return result


def neighbours_from_row(matrix: sp.csr_matrix, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` positive entries of one row of an item × item matrix, best first."""
    start, end = int(matrix.indptr[item]), int(matrix.indptr[item + 1])
    columns = np.asarray(matrix.indices[start:end])
    values = np.asarray(matrix.data[start:end], dtype=np.float64)
    keep = (values > 0) & (columns != item)
    columns, values = columns[keep], values[keep]
    order = np.lexsort((columns, -values))[:k]
    return columns[order].astype(np.int64), values[order]


def top_k_rows_in_chunks(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    k: int,
    *,
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
    chunk: int = 2048,
) -> sp.csr_matrix:
    """``left @ right`` (an item × item product) with its diagonal zeroed and only the ``k``
    largest entries of each row kept, computed a block of rows at a time so that the product never
    has to fit in memory whole. ``transform(block, first_row)`` may rescale each dense block."""
    blocks = []
    for start in range(0, left.shape[0], chunk):
        block = np.asarray((left[start : start + chunk] @ right).toarray(), dtype=np.float64)
        if transform is not None:
            block = transform(block, start)
        rows = np.arange(block.shape[0])
        inside = rows + start < block.shape[1]
        block[rows[inside], rows[inside] + start] = 0.0
        blocks.append(top_k_per_row(block, k))
    if not blocks:
        return sp.csr_matrix((0, right.shape[1]))
    return sp.csr_matrix(sp.vstack(blocks))


def price_bands(prices: np.ndarray, bands: int = 5) -> np.ndarray:
    """The price band of each item (0 cheapest … ``bands`` - 1 dearest) by the catalog's own price
    quantiles, so a band means the same in a shop of pens and a shop of sofas; -1 when unknown."""
    prices = np.asarray(prices, dtype=np.float64)
    known = prices[~np.isnan(prices)]
    result = np.full(prices.shape, -1, dtype=np.int64)
    if known.size == 0:
        return result
    edges = np.quantile(known, np.linspace(0, 1, bands + 1)[1:-1])
    inside = ~np.isnan(prices)
    result[inside] = np.searchsorted(edges, prices[inside], side="right")
    return result
