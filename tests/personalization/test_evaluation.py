"""The offline evaluation: metrics by hand, the temporal split, both protocols, the session task."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalization.recommenders.base import PURCHASE, VIEW, Visitors
from personalization.recommenders.evaluation import evaluate, next_basket_lines, ranking_metrics, window
from personalization.recommenders.popularity import Popular
from tests.personalization.test_recommenders import NOW, catalog, training_set


def test_metrics_at_k_by_hand() -> None:
    # recommended 1, 2, 3 to someone who bought 2 and 5: one hit, at position 2
    metrics = ranking_metrics([np.array([1, 2, 3])], [{2, 5}], k=3, n_items=10)
    assert metrics.precision == pytest.approx(1 / 3)
    assert metrics.recall == pytest.approx(1 / 2)
    assert metrics.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert metrics.map == pytest.approx((1 / 2) / 2)  # precision at the hit, over min(|truth|, k)
    assert metrics.coverage == pytest.approx(3 / 10)
    perfect = ranking_metrics([np.array([5, 2, 9])], [{2, 5}], k=3, n_items=10)
    assert perfect.ndcg == pytest.approx(1.0) and perfect.map == pytest.approx(1.0) and perfect.recall == 1.0


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=10, unique=True),
    st.sets(st.integers(0, 30), min_size=1, max_size=10),
)
def test_metrics_stay_between_zero_and_one(recommended: list[int], truth: set[int]) -> None:
    metrics = ranking_metrics([np.array(recommended)], [truth], k=10, n_items=31)
    for value in (metrics.precision, metrics.recall, metrics.ndcg, metrics.map, metrics.coverage):
        assert 0.0 <= value <= 1.0 + 1e-12
    assert (metrics.ndcg == 0) == (not set(recommended) & truth)


def split_data():
    """Before the cut-off (10 days ago): user 0 bought items 0 and 1, user 1 viewed item 2. After:
    user 0 buys 1 again and 3 (an order of four lines with 4 and 5), user 1 buys 2, user 2 (new) buys 0."""
    rows = [(0, 0, PURCHASE, 30, 1), (0, 1, PURCHASE, 30, 1), (1, 2, VIEW, 20, -1)]
    rows += [(0, 1, PURCHASE, 5, 2), (0, 3, PURCHASE, 5, 2), (0, 4, PURCHASE, 5, 2), (0, 5, PURCHASE, 5, 2)]
    rows += [(1, 2, PURCHASE, 4, 3), (2, 0, PURCHASE, 3, 4)]
    return training_set(rows, 3, catalog(6))


def test_the_window_judges_people_with_history_on_what_they_bought_after_the_cut_off() -> None:
    data = split_data()
    judged = window(data, NOW - 10 * 86_400, NOW + 1)
    assert judged.users.tolist() == [0, 1]  # user 2 has no history before the cut-off
    assert judged.truth == [{1, 3, 4, 5}, {2}]
    assert len(judged.train.interactions) == 3
    assert judged.bought_before.toarray().tolist()[0] == [1, 1, 0, 0, 0, 0]
    assert judged.baskets == [(0, [1, 3, 4, 5])]


class Fixed:
    """A scorer that always ranks items 1, 3, 2, 0, 4, 5."""

    order = [1, 3, 2, 0, 4, 5]

    def score(self, visitors: Visitors) -> np.ndarray:
        scores = np.zeros((len(visitors), 6))
        for rank, item in enumerate(self.order):
            scores[:, item] = 6 - rank
        return scores


def test_new_items_removes_what_was_bought_from_the_list_and_the_truth() -> None:
    judged = window(split_data(), NOW - 10 * 86_400, NOW + 1)
    repeat = evaluate(Fixed().score, judged, "repeat", k=2)
    # user 0: [1, 3] against {1, 3, 4, 5} -> 2 hits; user 1: [1, 3] against {2} -> none
    assert repeat.precision == pytest.approx((2 / 2 + 0) / 2)
    assert repeat.people == 2
    new_items = evaluate(Fixed().score, judged, "new-items", k=2)
    # user 0 bought 0 and 1 before: the list is [3, 2], the truth {3, 4, 5}; user 1 only viewed
    # item 2 before, so it stays in their truth ({2}) and their list ([1, 3]) misses it
    assert new_items.precision == pytest.approx((1 / 2 + 0) / 2)
    assert new_items.recall == pytest.approx((1 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(Fixed().score, judged, "sometimes")


def test_the_next_basket_line_task_gives_the_first_half_as_the_session() -> None:
    judged = window(split_data(), NOW - 10 * 86_400, NOW + 1)
    seen: list[Visitors] = []

    def scorer(visitors: Visitors) -> np.ndarray:
        seen.append(visitors)
        return Fixed().score(visitors)

    with_session = next_basket_lines(scorer, judged, with_session=True, k=2)
    # session: lines 1 and 3 (excluded from the list), truth: 4 and 5; the list is [2, 0]
    assert seen[0].session.toarray().tolist() == [[0, 1, 0, 2, 0, 0]]  # the later line weighs more
    assert with_session.ndcg == 0.0 and with_session.people == 1
    without = next_basket_lines(scorer, judged, with_session=False, k=2)
    assert seen[1].session.nnz == 0 and without.people == 1


def test_popular_on_the_window() -> None:
    judged = window(split_data(), NOW - 10 * 86_400, NOW + 1)
    popular = Popular().fit(judged.train)
    metrics = evaluate(popular.score, judged, "repeat", k=1)
    # before the cut-off items 0 and 1 have 5 each (purchases), item 2 has 1 (a view): the list is [0]
    assert metrics.precision == 0.0
