"""LightFM hybrid matrix factorisation with the WARP loss (pure: no Django).

Every item is the sum of the embeddings of its features: its own id, each level of its category
path, its brand, its tags, its price band and the commonest words of its descriptions. Every
person is the sum of their id's embedding and their country's (segments join when they exist).
So an item nobody has bought yet is scored from what it shares with items people did buy, and a
visitor nobody knows yet is scored from their country. ``features = False`` gives plain matrix
factorisation (ids only), the baseline a data scientist would try first.

Session-aware: the embeddings of what a visitor did just now (``Visitors.session``) are averaged
and added to their own vector with ``session_weight``, so a view moves their next scores at
once, also for an anonymous visitor with no history at all.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from sklearn.feature_extraction.text import CountVectorizer

from personalization.recommenders.base import (
    CATEGORY_SEPARATOR,
    ItemSide,
    Recommender,
    TrainingSet,
    Visitors,
    derived,
    price_bands,
    row_normalized,
)


def _features_matrix(
    names: Sequence[Sequence[str]], vocabulary: dict[str, int], own_weight: float, *, extra: sp.csr_matrix | None = None
) -> sp.csr_matrix:
    """Rows: an identity column with ``own_weight``, then the named features sharing the rest."""
    n_rows = len(names)
    rows, columns = [], []
    for row, features in enumerate(names):
        for feature in features:
            rows.append(row)
            columns.append(vocabulary[feature])
    shared = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n_rows, len(vocabulary)))
    if extra is not None:
        shared = sp.csr_matrix(sp.hstack([shared, extra]))
    counts = np.asarray(shared.sum(axis=1)).ravel()
    scale = np.where(counts > 0, (1.0 - own_weight) / np.maximum(counts, 1e-12), 0.0)
    own = np.where(counts > 0, own_weight, 1.0)
    return sp.csr_matrix(sp.hstack([sp.diags(own), sp.diags(scale) @ shared]), dtype=np.float32)


def item_feature_names(items: ItemSide) -> list[list[str]]:
    bands = price_bands(items.prices)
    names = []
    for category, brand, tags, band in zip(items.categories, items.brands, items.tags, bands, strict=True):
        features = []
        if category:
            parts = category.split(CATEGORY_SEPARATOR)
            features += [f"category:{CATEGORY_SEPARATOR.join(parts[: depth + 1])}" for depth in range(len(parts))]
        if brand:
            features.append(f"brand:{brand.lower()}")
        features += [f"tag:{tag.lower()}" for tag in dict.fromkeys(tags) if tag]
        if band >= 0:
            features.append(f"price_band:{band}")
        names.append(list(dict.fromkeys(features)))
    return names


class LightFMHybrid(Recommender):
    name = "lightfm"
    defaults: ClassVar[dict[str, Any]] = {
        "features": True,
        "components": 64,
        "epochs": 8,
        "learning_rate": 0.1,
        "item_alpha": 0.0,
        "user_alpha": 0.0,
        "max_sampled": 30,
        "description_words": 100,
        "feature_weight": 0.2,
        "half_life_days": None,
        "session_weight": 0.5,
        "seed": 0,
        "threads": 1,
    }
    user_arrays = {"user_embeddings": "", "user_biases": ""}

    def fit(self, data: TrainingSet) -> Self:
        interactions = data.user_items(self.params["half_life_days"]).tocoo()
        sample_weight = interactions.copy()
        if sample_weight.nnz:
            sample_weight.data = (sample_weight.data / sample_weight.data.mean()).astype(np.float32)
        interactions.data = np.ones_like(interactions.data, dtype=np.float32)
        item_features = user_features = None
        countries = sorted({c for c in data.user_countries if c})
        if self.params["features"]:
            item_features = self._item_features(data.items)
            user_features = self._user_features(data.user_countries, countries)
        model = LightFM(
            no_components=int(self.params["components"]),
            loss="warp",
            learning_rate=float(self.params["learning_rate"]),
            item_alpha=float(self.params["item_alpha"]),
            user_alpha=float(self.params["user_alpha"]),
            max_sampled=int(self.params["max_sampled"]),
            random_state=np.random.RandomState(int(self.params["seed"])),
        )
        model.fit(
            interactions,
            sample_weight=sample_weight,
            item_features=item_features,
            user_features=user_features,
            epochs=int(self.params["epochs"]),
            num_threads=int(self.params["threads"]),
        )
        self.item_biases, self.item_embeddings = (
            np.asarray(a, dtype=np.float32) for a in model.get_item_representations(item_features)
        )
        self.user_biases, self.user_embeddings = (
            np.asarray(a, dtype=np.float32) for a in model.get_user_representations(user_features)
        )
        self.countries = np.asarray(countries if self.params["features"] else [], dtype=str)
        # A visitor known only by their country is that country's feature (it follows the ids).
        first = data.n_users
        self.country_embeddings = np.asarray(
            model.user_embeddings[first : first + len(self.countries)], dtype=np.float32
        ).reshape(len(self.countries), int(self.params["components"]))
        return self

    def _item_features(self, items: ItemSide) -> sp.csr_matrix:
        names = item_feature_names(items)
        vocabulary = {name: i for i, name in enumerate(sorted({n for row in names for n in row}))}
        words = None
        if int(self.params["description_words"]) > 0 and any(text.strip() for text in items.texts):
            try:
                words = CountVectorizer(
                    max_features=int(self.params["description_words"]), binary=True, stop_words="english", min_df=2
                ).fit_transform(items.texts)
            except ValueError:  # no word is in two items
                words = None
        return _features_matrix(names, vocabulary, 1.0 - float(self.params["feature_weight"]), extra=words)

    def _user_features(self, user_countries: Sequence[str], countries: list[str]) -> sp.csr_matrix:
        vocabulary = {f"country:{c}": i for i, c in enumerate(countries)}
        names = [[f"country:{c}"] if c else [] for c in user_countries]
        return _features_matrix(names, vocabulary, 1.0 - float(self.params["feature_weight"]))

    def visitor_vectors(self, visitors: Visitors) -> np.ndarray:
        vectors = np.zeros((len(visitors), self.item_embeddings.shape[1]), dtype=np.float64)
        known = visitors.rows >= 0
        vectors[known] = np.asarray(self.user_embeddings)[visitors.rows[known]]  # not a memmap: no per-row views
        countries = self.countries
        country_row = derived(self, "country_rows", countries, lambda: {str(c): i for i, c in enumerate(countries)})
        for position in np.flatnonzero(~known):
            row = country_row.get(visitors.countries[int(position)] or "")
            if row is not None:
                vectors[position] = self.country_embeddings[row]
        weight = float(self.params["session_weight"])
        if weight and visitors.session.nnz and len(visitors) == 1:
            # One visitor served: the mean of their session items' embeddings on the arrays (the
            # sparse normalization and product cost half of this model's scoring).
            values = np.asarray(visitors.session.data, dtype=np.float64)
            largest = float(np.abs(values).max())
            values = values / (largest if largest > 0 else 1.0)
            total = float(values.sum())
            means = values @ self._embeddings64()[visitors.session.indices]
            vectors[0] += weight * (means / (total if total > 0 else 1.0))
        elif weight and visitors.session.nnz:
            session = row_normalized(visitors.session)
            totals = np.asarray(session.sum(axis=1)).ravel()
            means = (session @ self._embeddings64()) / np.where(totals > 0, totals, 1.0)[:, None]
            vectors += weight * np.asarray(means)
        return vectors

    def _embeddings64(self) -> np.ndarray:
        """The item embeddings as float64, copied once per process: the saved float32 arrays are
        shared, memory-mapped, and numpy would otherwise convert them at every product."""
        embeddings = self.item_embeddings
        return derived(self, "embeddings", embeddings, lambda: np.asarray(embeddings, dtype=np.float64))  # type: ignore[no-any-return]

    def score(self, visitors: Visitors) -> np.ndarray:
        scores = self.visitor_vectors(visitors) @ self._embeddings64().T
        biases = self.item_biases
        scores += derived(self, "biases", biases, lambda: np.asarray(biases, dtype=np.float64)[None, :])
        centred = scores - scores.mean(axis=1, keepdims=True)
        spread = centred.std(axis=1, keepdims=True)
        return np.asarray(centred / np.where(spread > 0, spread, 1.0))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_biases": self.item_biases,
            "item_embeddings": self.item_embeddings,
            "user_biases": self.user_biases,
            "user_embeddings": self.user_embeddings,
            "countries": self.countries,
            "country_embeddings": self.country_embeddings,
        }

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.item_biases, self.item_embeddings = arrays["item_biases"], arrays["item_embeddings"]
        self.user_biases, self.user_embeddings = arrays["user_biases"], arrays["user_embeddings"]
        self.countries, self.country_embeddings = arrays["countries"], arrays["country_embeddings"]
