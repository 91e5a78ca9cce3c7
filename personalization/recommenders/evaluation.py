"""Offline evaluation with a temporal split (pure: no Django).

A recommender fitted on everything before a cut-off is asked for the top ``k`` items of each
person who bought something in the window after it, and judged against what they bought. Two
protocols:

- ``new-items``: products the person bought before the cut-off are removed from the
  recommendations and from the truth (can it find what they did not know yet?);
- ``repeat``: they count (can it predict the next order, reorders included?).

Only people with some history before the cut-off are judged (cold start is served by trending
and is not what these figures measure). Metrics are the usual ones at ``k``: precision, recall,
NDCG (binary relevance), MAP, and catalogue coverage (the share of items recommended to anyone).

The next-basket-line task checks session-aware scoring: for each order in the window with at
least four distinct items, the first half of its lines (in the order they were entered) is the
session, and the rest is the truth.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from personalization.recommenders.base import PURCHASE, TrainingSet, Visitors, top_k

PROTOCOLS = ("new-items", "repeat")
Scorer = Callable[[Visitors], np.ndarray]


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    people: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "ndcg": self.ndcg,
            "map": self.map,
            "coverage": self.coverage,
            "people": self.people,
        }


def ranking_metrics(recommended: Sequence[np.ndarray], truths: Sequence[set[int]], k: int, n_items: int) -> Metrics:
    """Mean precision, recall, NDCG and MAP at ``k`` over people (each with a non-empty truth)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision = recall = ndcg = average_precision = 0.0
    shown: set[int] = set()
    for items, truth in zip(recommended, truths, strict=True):
        items = items[:k]
        shown.update(int(i) for i in items)
        hits = np.array([int(i) in truth for i in items], dtype=bool)
        found = int(hits.sum())
        precision += found / k
        recall += found / len(truth)
        ideal = discounts[: min(len(truth), k)].sum()
        ndcg += float(discounts[: len(items)][hits].sum() / ideal)
        if found:
            precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
            average_precision += float(precision_at_hits.sum() / min(len(truth), k))
    people = len(truths)
    if people == 0:
        return Metrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    return Metrics(
        precision / people, recall / people, ndcg / people, average_precision / people, len(shown) / n_items, people
    )


@dataclass(frozen=True)
class Window:
    """What a recommender fitted on ``train`` is judged on: purchases in [cutoff, end)."""

    train: TrainingSet
    users: np.ndarray  # the people judged, with history before the cut-off
    truth: list[set[int]]  # what each bought in the window
    bought_before: sp.csr_matrix  # people × items: 1 where they had bought it before the cut-off
    baskets: list[tuple[int, list[int]]]  # (user row, items in line order) of the window's orders
    history: sp.csr_matrix  # everyone × items: what the model knows they did (decayed)

    def visitors(self, users: np.ndarray, *, new_items_only: bool = False) -> Visitors:
        return Visitors(
            rows=users,
            history=sp.csr_matrix(self.history[users]),
            session=sp.csr_matrix((len(users), self.train.n_items)),
            countries=[self.train.user_countries[u] for u in users],
            now=self.train.as_of,
            new_items_only=new_items_only,
        )


def window(data: TrainingSet, cutoff: float, end: float, *, history_half_life_days: float = 30.0) -> Window:
    """Split ``data`` at ``cutoff``: fit on what came before, judge on purchases up to ``end``."""
    train = data.until(cutoff)
    interactions = data.interactions
    inside = (interactions.times >= cutoff) & (interactions.times < end) & (interactions.kinds == PURCHASE)
    has_history = np.zeros(data.n_users, dtype=bool)
    has_history[train.interactions.users] = True
    truth_of: dict[int, set[int]] = {}
    for user, item in zip(interactions.users[inside], interactions.items[inside], strict=True):
        if has_history[user]:
            truth_of.setdefault(int(user), set()).add(int(item))
    users = np.array(sorted(truth_of), dtype=np.int64)
    purchases = train.interactions.kinds == PURCHASE
    bought = sp.csr_matrix(
        (
            np.ones(int(purchases.sum())),
            (train.interactions.users[purchases], train.interactions.items[purchases]),
        ),
        shape=(data.n_users, data.n_items),
    )
    bought.sum_duplicates()
    baskets: dict[int, tuple[int, list[int]]] = {}
    for user, item, basket in zip(
        interactions.users[inside], interactions.items[inside], interactions.baskets[inside], strict=True
    ):
        if basket >= 0 and has_history[user]:
            entry = baskets.setdefault(int(basket), (int(user), []))
            if int(item) not in entry[1]:
                entry[1].append(int(item))
    return Window(
        train=train,
        users=users,
        truth=[truth_of[int(u)] for u in users],
        bought_before=sp.csr_matrix(bought[users]),
        baskets=[entry for entry in baskets.values() if len(entry[1]) >= 4],
        history=train.user_items(history_half_life_days),
    )


def _ranked(scores: np.ndarray, excluded: sp.csr_matrix | None, k: int) -> list[np.ndarray]:
    if excluded is not None and excluded.nnz:
        scores = scores.copy()
        rows, columns = excluded.nonzero()
        scores[rows, columns] = -np.inf
    return [top_k(row, k) for row in scores]


def evaluate(scorer: Scorer, data: Window, protocol: str, *, k: int = 10, chunk: int = 512) -> Metrics:
    """Judge a scorer (``Recommender.score``) on a window under a protocol."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    new_items = protocol == "new-items"
    recommended: list[np.ndarray] = []
    truths: list[set[int]] = []
    for start in range(0, len(data.users), chunk):
        users = data.users[start : start + chunk]
        bought = data.bought_before[start : start + chunk]
        scores = scorer(data.visitors(users, new_items_only=new_items))
        lists = _ranked(scores, bought if new_items else None, k)
        for offset, items in enumerate(lists):
            truth = data.truth[start + offset]
            if new_items:
                truth = truth - set(bought[offset].indices.tolist())
            if truth:
                recommended.append(items)
                truths.append(truth)
    return ranking_metrics(recommended, truths, k, data.train.n_items)


def next_basket_lines(scorer: Scorer, data: Window, *, with_session: bool, k: int = 10, chunk: int = 512) -> Metrics:
    """The next-basket-line task: the first half of each order's lines is the session, the rest
    the truth. ``with_session = False`` scores the same visitors without their session."""
    recommended: list[np.ndarray] = []
    truths: list[set[int]] = []
    n_items = data.train.n_items
    for start in range(0, len(data.baskets), chunk):
        baskets = data.baskets[start : start + chunk]
        users = np.array([user for user, _ in baskets], dtype=np.int64)
        given = [items[: len(items) // 2] for _, items in baskets]
        rows, columns, values = [], [], []
        for row, items in enumerate(given):
            for position, item in enumerate(items):
                rows.append(row)
                columns.append(item)
                values.append(float(position + 1))  # the latest line weighs most
        session = sp.csr_matrix((values, (rows, columns)), shape=(len(baskets), n_items))
        visitors = Visitors(
            rows=users,
            history=sp.csr_matrix(data.history[users]),
            session=session,
            countries=[data.train.user_countries[u] for u in users],
            now=data.train.as_of,
        )
        if not with_session:
            visitors = visitors.without_session()
        scores = scorer(visitors)
        excluded = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(baskets), n_items))
        for (_, items), shown, items_given in zip(baskets, _ranked(scores, excluded, k), given, strict=True):
            truths.append(set(items) - set(items_given))
            recommended.append(shown)
    return ranking_metrics(recommended, truths, k, n_items)
