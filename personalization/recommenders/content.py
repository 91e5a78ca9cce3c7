"""Content-based recommendations: items that read alike (pure: no Django).

Each item is a TF-IDF vector (scikit-learn) of its name and description, its category path (each
level as a word, and the whole path as one token), its brand, its tags and its price band; two
items are as similar as the cosine of their vectors. A visitor is scored by the similarity of
every item to what they bought, added and viewed. It needs no interactions at all, so it covers
new items and new shops.
"""

import re
from typing import Any, ClassVar, Self

import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from personalization.recommenders.base import (
    ItemSide,
    ItemSimilarity,
    TrainingSet,
    price_bands,
    top_k_rows_in_chunks,
)

_NOT_A_WORD = re.compile(r"\W+")


def _token(prefix: str, value: str) -> str:
    return f"{prefix}_{_NOT_A_WORD.sub('_', value.strip().lower()).strip('_')}"


def item_documents(items: ItemSide) -> list[str]:
    """The text each item is known by, with category, brand, tags and price band as tokens."""
    bands = price_bands(items.prices)
    documents = []
    for text, category, brand, tags, band in zip(
        items.texts, items.categories, items.brands, items.tags, bands, strict=True
    ):
        words = [text, category.replace(">", " ")]
        if category:
            words.append(_token("category", category))
        if brand:
            words += [brand, _token("brand", brand)]
        words += [_token("tag", tag) for tag in tags if tag]
        if band >= 0:
            words.append(f"price_band_{band}")
        documents.append(" ".join(words))
    return documents


class ContentBased(ItemSimilarity):
    name = "content"
    defaults: ClassVar[dict[str, Any]] = {"neighbours": 100, "ngram_max": 2, "session_weight": 1.0}

    def fit(self, data: TrainingSet) -> Self:
        documents = item_documents(data.items)
        if not any(document.strip() for document in documents):
            self.similarity = sp.csr_matrix((data.n_items, data.n_items))
            return self
        vectors = TfidfVectorizer(
            ngram_range=(1, int(self.params["ngram_max"])),
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",  # noqa: S106 (not a password)
        ).fit_transform(documents)
        self.similarity = top_k_rows_in_chunks(
            sp.csr_matrix(vectors), sp.csr_matrix(vectors.T), int(self.params["neighbours"])
        )
        return self
