"""Each recommender on tiny data whose right answers are known by hand (pure: no database)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from personalization.recommenders import RECOMMENDERS
from personalization.recommenders.base import (
    ADD,
    DAY,
    PURCHASE,
    VIEW,
    Interactions,
    ItemSide,
    TrainingSet,
    Visitors,
    price_bands,
    top_k,
)
from personalization.recommenders.buy_again import BuyAgain
from personalization.recommenders.content import ContentBased
from personalization.recommenders.cooccurrence import BoughtTogether, ViewedTogether
from personalization.recommenders.ease import ItemRegression, TooManyItems
from personalization.recommenders.hybrid import MODES, Hybrid
from personalization.recommenders.hybrid_factors import LightFMHybrid
from personalization.recommenders.popularity import Popular, Trending

NOW = 1_700_000_000.0


def catalog(n: int, texts: list[str] | None = None, categories: list[str] | None = None) -> ItemSide:
    return ItemSide(
        texts=texts or [f"item {i}" for i in range(n)],
        categories=categories or [""] * n,
        brands=[""] * n,
        tags=[[] for _ in range(n)],
        prices=np.full(n, np.nan),
    )


def training_set(
    rows: Sequence[tuple[int, int, int, float, int]], n_users: int, items: ItemSide, countries: list[str] | None = None
) -> TrainingSet:
    """``rows``: (user, item, kind, days before NOW, basket)."""
    users, item_rows, kinds, days, baskets = (np.array(column) for column in zip(*rows, strict=True))
    return TrainingSet(
        interactions=Interactions(
            users.astype(np.int32),
            item_rows.astype(np.int32),
            kinds.astype(np.int8),
            NOW - days.astype(np.float64) * DAY,
            baskets.astype(np.int64),
        ),
        items=items,
        user_countries=countries or [""] * n_users,
        as_of=NOW,
    )


def visitors(
    n_items: int,
    rows: list[int],
    history: dict[int, dict[int, float]] | None = None,
    session: dict[int, dict[int, float]] | None = None,
    countries: list[str] | None = None,
) -> Visitors:
    def matrix(entries: dict[int, dict[int, float]] | None) -> sp.csr_matrix:
        result = sp.lil_matrix((len(rows), n_items))
        for position, weights in (entries or {}).items():
            for item, weight in weights.items():
                result[position, item] = weight
        return sp.csr_matrix(result)

    return Visitors(
        rows=np.array(rows), history=matrix(history), session=matrix(session), countries=countries or [""] * len(rows)
    )


def best(scores: np.ndarray, k: int = 3) -> list[int]:
    return top_k(scores, k).tolist()


# --- popularity -------------------------------------------------------------------------------------


def test_popular_counts_interactions_weighted_by_kind() -> None:
    # item 0: three views (3 × 1); item 1: one purchase (5); item 2: one add (3)
    data = training_set(
        [(0, 0, VIEW, 1, -1), (1, 0, VIEW, 1, -1), (2, 0, VIEW, 1, -1), (0, 1, PURCHASE, 1, 7), (1, 2, ADD, 1, -1)],
        3,
        catalog(4),
    )
    scores = Popular().fit(data).score(visitors(4, [-1]))[0]
    assert scores.tolist() == [3.0, 5.0, 3.0, 0.0]
    assert best(scores) == [1, 0, 2]  # a tie goes to the lower row


def test_trending_prefers_what_is_bought_now_and_what_a_country_buys() -> None:
    # item 0: four purchases 70 days ago; item 1: one purchase yesterday; item 2: bought in France
    rows = [(u, 0, PURCHASE, 70, u) for u in range(4)] + [(0, 1, PURCHASE, 1, 10)] + [(4, 2, PURCHASE, 3, 11)]
    data = training_set(rows, 5, catalog(3), countries=["GB", "GB", "GB", "GB", "FR"])
    trending = Trending(half_life_days=7.0, min_country_users=1, country_weight=0.5).fit(data)
    overall = trending.score(visitors(3, [-1]))[0]
    # decayed by hand: 4 × 0.5^(70/7) = 0.0039; 0.5^(1/7) = 0.906; 0.5^(3/7) = 0.743; scaled to the largest
    assert overall == pytest.approx([4 * 0.5**10 / 0.5 ** (1 / 7), 1.0, 0.5 ** (3 / 7) / 0.5 ** (1 / 7)], rel=1e-5)
    assert best(overall) == [1, 2, 0]
    french = trending.score(visitors(3, [-1], countries=["FR"]))[0]
    assert best(french)[0] == 2  # half the French trend, where item 2 is all there is
    assert french[2] == pytest.approx(0.5 * overall[2] + 0.5 * 1.0, rel=1e-5)
    assert Popular().fit(data).score(visitors(3, [-1]))[0].argmax() == 0  # popular ignores time


# --- content ------------------------------------------------------------------------------------------


def test_content_finds_the_item_that_reads_alike() -> None:
    texts = ["ceramic coffee mug", "ceramic tea mug", "wool winter scarf", "garden hose"]
    data = training_set([(0, 0, PURCHASE, 1, 1)], 1, catalog(4, texts))
    content = ContentBased(ngram_max=1).fit(data)
    neighbours, scores = content.similar(0, 3)
    assert neighbours.tolist() == [1]  # nothing else shares a word with the coffee mug
    assert scores[0] > 0.3
    # a visitor who bought the coffee mug is offered the tea mug first
    assert best(content.score(visitors(4, [0], history={0: {0: 1.0}}))[0])[0] == 1


def test_content_uses_category_brand_and_price_band() -> None:
    items = ItemSide(
        texts=["lamp", "rug", "chair", "pen"],
        categories=["Home > Lighting", "Home > Textiles", "Home > Lighting", "Office"],
        brands=["Nordic", "", "Nordic", ""],
        tags=[["oak"], [], ["oak"], []],
        prices=np.array([40.0, 60.0, 42.0, 1.0]),
    )
    data = training_set([(0, 0, PURCHASE, 1, 1)], 1, items)
    neighbours, _ = ContentBased().fit(data).similar(0, 3)
    assert neighbours[0] == 2  # same category, brand, tag and price band
    assert 3 not in neighbours.tolist()


def test_price_bands_follow_the_catalogs_quantiles() -> None:
    assert price_bands(np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan])).tolist() == [0, 1, 2, 3, 4, -1]


# --- co-occurrence -------------------------------------------------------------------------------------


def test_bought_together_does_not_let_the_bestseller_drown_everything() -> None:
    # item 0 is bought with the bestseller (1) twice and with item 2 twice; the bestseller is in
    # four more orders. Raw counts tie; normalised, item 2 goes with item 0 far more specifically.
    baskets = [[0, 1], [0, 1], [0, 2], [0, 2], [1], [1], [1], [1]]
    rows = [(b, item, PURCHASE, 5, b) for b, basket in enumerate(baskets) for item in basket]
    data = training_set(rows, len(baskets), catalog(3))
    together = BoughtTogether(shrink=0.0).fit(data)
    neighbours, scores = together.similar(0, 2)
    assert neighbours.tolist() == [2, 1]
    # cosine by hand: c(0,2) / sqrt(4 · 2) = 0.707; c(0,1) / sqrt(4 · 6) = 0.408
    assert scores == pytest.approx([2 / np.sqrt(8), 2 / np.sqrt(24)], rel=1e-5)


def test_viewed_together_reads_sessions_and_bought_together_orders() -> None:
    rows = [(0, 0, VIEW, 1, 100), (0, 1, VIEW, 1, 100), (1, 0, PURCHASE, 2, 7), (1, 2, PURCHASE, 2, 7)]
    data = training_set(rows, 2, catalog(3))
    assert BoughtTogether().fit(data).similar(0, 2)[0].tolist() == [2]
    viewed = ViewedTogether(shrink=0.0).fit(data).similar(0, 2)[0].tolist()
    assert set(viewed) == {1, 2}  # without page views, an order's lines are its session


# --- item regression --------------------------------------------------------------------------------------


def test_item_regression_predicts_what_goes_with_a_history() -> None:
    # items 0 and 1 always together; item 2 with item 3; item 4 alone
    rows = []
    for user in range(6):
        pair = (0, 1) if user < 3 else (2, 3)
        rows += [(user, pair[0], PURCHASE, 10, user), (user, pair[1], PURCHASE, 10, user)]
    rows.append((6, 4, PURCHASE, 10, 6))
    data = training_set(rows, 7, catalog(5))
    ease = ItemRegression(l2=0.1, half_life_days=None).fit(data)
    scores = ease.score(visitors(5, [-1], session={0: {0: 1.0}}))[0]
    assert best(scores, 1) == [1]
    assert scores[1] > 0.5 and abs(scores[2]) < 1e-6 and abs(scores[4]) < 1e-6
    assert ease.similar(2, 2)[0].tolist() == [3]
    with pytest.raises(TooManyItems):
        ItemRegression(max_items=4).fit(data)


def test_item_regression_can_keep_only_the_strongest_weights() -> None:
    rows = [(u, i, PURCHASE, 1, u) for u in range(5) for i in range(4) if (u + i) % 3]
    data = training_set(rows, 5, catalog(4))
    dense = ItemRegression(l2=1.0).fit(data)
    sparse = ItemRegression(l2=1.0, neighbours=3).fit(data)  # 3 = every other item: nothing dropped
    query = visitors(4, [-1], history={0: {0: 1.0, 1: 0.5}})
    assert sparse.score(query) == pytest.approx(dense.score(query), abs=1e-5)


# --- buy again --------------------------------------------------------------------------------------------


def test_buy_again_knows_what_and_when_a_customer_rebuys() -> None:
    # user 0 buys item 0 every 10 days (last 10 days ago) and item 1 once, 200 days ago;
    # user 1 bought item 0 yesterday and item 2 never.
    rows = [(0, 0, PURCHASE, days, basket) for basket, days in enumerate((40, 30, 20, 10))]
    rows += [(0, 1, PURCHASE, 200, 9), (1, 0, PURCHASE, 1, 10), (1, 2, VIEW, 1, -1)]
    data = training_set(rows, 2, catalog(3))
    model = BuyAgain(half_life_days=90.0, timing_weight=1.0, min_cycles=3).fit(data)
    assert model.cycles[0] == pytest.approx(10.0)
    scores = model.score(visitors(3, [0, 1]))
    assert best(scores[0], 2) == [0, 1]
    frequency = sum(0.5 ** (d / 90) for d in (40, 30, 20, 10))
    assert scores[0, 0] == pytest.approx(frequency * 2.0, rel=1e-3)  # due today: the bump is 1
    assert scores[1, 2] == 0.0  # viewed, never bought
    # just bought yesterday: due in 9 days, so the bump is small
    due = np.exp(-(np.log(1 / 10) ** 2) / (2 * 0.75**2))
    assert scores[1, 0] == pytest.approx(0.5 ** (1 / 90) * (1 + due), rel=1e-3)
    assert model.score(visitors(3, [-1]))[0].tolist() == [0.0, 0.0, 0.0]  # unknown visitor


# --- LightFM ----------------------------------------------------------------------------------------------


def two_tastes() -> TrainingSet:
    """French customers buy kitchen things, German ones garden things; items 3 and 7 are new."""
    categories = ["Kitchen"] * 4 + ["Garden"] * 4
    rows = []
    for user in range(20):
        first = 0 if user < 10 else 4
        rows += [(user, first + i, PURCHASE, 5 + i, user) for i in range(3) if (user + i) % 4]
    countries = ["FR"] * 10 + ["DE"] * 10
    return training_set(rows, 20, catalog(8, categories=categories), countries)


def test_lightfm_scores_new_items_and_new_visitors_from_their_features() -> None:
    data = two_tastes()
    model = LightFMHybrid(epochs=40, components=8, feature_weight=0.5, description_words=0, seed=3).fit(data)
    scores = model.score(visitors(8, [0, 15, -1, -1], countries=["", "", "FR", "DE"]))
    assert scores[0, 3] > scores[0, 7]  # the new kitchen item, for a kitchen customer
    assert scores[1, 7] > scores[1, 3]
    assert set(best(scores[2], 3)) <= {0, 1, 2, 3}  # a new French visitor: kitchen
    assert set(best(scores[3], 3)) <= {4, 5, 6, 7}
    # the session moves an anonymous visitor at once
    session = model.score(visitors(8, [-1], session={0: {5: 1.0}}))
    assert best(session[0], 1)[0] in {4, 5, 6, 7}


def test_lightfm_is_deterministic_with_a_fixed_seed_and_one_thread(tmp_path: Path) -> None:
    data = two_tastes()
    first = LightFMHybrid(epochs=5, components=8, seed=7, threads=1).fit(data)
    second = LightFMHybrid(epochs=5, components=8, seed=7, threads=1).fit(data)
    for name, array in first.arrays().items():
        assert np.array_equal(array, second.arrays()[name]), name
    other = LightFMHybrid(epochs=5, components=8, seed=8, threads=1).fit(data)
    assert not np.array_equal(first.item_embeddings, other.item_embeddings)
    first.save(tmp_path / "lightfm")
    loaded = LightFMHybrid.load(tmp_path / "lightfm")
    query = visitors(8, [0, -1], countries=["", "DE"])
    assert np.array_equal(loaded.score(query), first.score(query))


# --- the blend ---------------------------------------------------------------------------------------------


def test_the_blend_weighs_its_components_per_list_and_follows_the_session(tmp_path: Path) -> None:
    data = two_tastes()
    components = {"popular": Popular().fit(data), "ease": ItemRegression(l2=0.5).fit(data)}
    hybrid = Hybrid(components, weights={"repeat": {"popular": 1.0}, "new_items": {"ease": 1.0}}, affinity_weight=0.0)
    hybrid.fit_affinities(data)
    query = visitors(8, [-1], session={0: {4: 1.0}})
    popular_only = hybrid.score(query)[0]
    popular = components["popular"].score(query)[0]
    assert popular_only == pytest.approx(popular / popular.max())
    discovery = hybrid.score(Visitors(query.rows, query.history, query.session, query.countries, new_items_only=True))
    assert set(best(discovery[0], 2)) <= {5, 6}  # what goes with the garden item just viewed
    parts = hybrid.contributions(query)
    assert np.sum(list(parts.values()), axis=0)[0] == pytest.approx(popular_only)
    hybrid.save(tmp_path / "hybrid")
    loaded = Hybrid.load(tmp_path / "hybrid")
    assert np.allclose(loaded.score(query), hybrid.score(query))
    assert sorted(loaded.components) == ["ease", "popular"]


def test_affinities_lift_the_categories_of_what_was_just_viewed() -> None:
    data = two_tastes()
    hybrid = Hybrid({}, weights={"repeat": {}, "new_items": {}}, affinity_weight=1.0)
    hybrid.fit_affinities(data)
    scores = hybrid.score(visitors(8, [-1], session={0: {1: 1.0}}))[0]
    assert scores[:4].tolist() == [0.5] * 4 and scores[4:].tolist() == [0.0] * 4  # categories; no brands


def test_every_recommender_saves_and_loads_to_the_same_scores(tmp_path: Path) -> None:
    data = two_tastes()
    query = visitors(
        8, [0, 12, -1], history={0: {0: 1.0}, 1: {5: 1.0}}, session={2: {6: 1.0}}, countries=["", "", "DE"]
    )
    for name, cls in RECOMMENDERS.items():
        if name == "hybrid":
            continue
        fitted = cls(**({"threads": 1, "epochs": 3} if name == "lightfm" else {})).fit(data)
        fitted.save(tmp_path / name)
        assert np.allclose(cls.load(tmp_path / name).score(query), fitted.score(query)), name


def test_one_visitor_alone_gets_the_scores_a_batch_gives_them() -> None:
    """Serving scores one visitor at a time, through paths of its own (gathered rows, no sparse
    products): they must give what the batch paths give, for known and new visitors, with and
    without a session."""
    data = two_tastes()
    query = visitors(
        8,
        [0, 2, -1, 5],
        history={0: {0: 1.0, 1: 0.5}, 1: {5: 2.0}, 3: {2: 1.0}},
        session={0: {3: 1.0}, 2: {6: 1.0, 7: 0.5}, 3: {2: 0.5, 4: 2.0}},
        countries=["", "", "DE", ""],
    )
    fitted = {
        name: cls(**({"threads": 1, "epochs": 3} if name == "lightfm" else {})).fit(data)
        for name, cls in RECOMMENDERS.items()
        if name != "hybrid"
    }
    hybrid = Hybrid(fitted, weights={mode: dict.fromkeys(fitted, 1.0) for mode in MODES}, affinity_weight=0.5)
    hybrid.fit_affinities(data)
    for name, recommender in [*fitted.items(), ("hybrid", hybrid)]:
        together = recommender.score(query)
        for position in range(len(query)):
            alone = Visitors(
                query.rows[position : position + 1],
                sp.csr_matrix(query.history[position]),
                sp.csr_matrix(query.session[position]),
                [query.countries[position]],
            )
            assert np.allclose(recommender.score(alone)[0], together[position], rtol=1e-6, atol=1e-9), (name, position)


def test_erasing_rows_zeroes_a_persons_numbers(tmp_path: Path) -> None:
    data = two_tastes()
    for cls in (BuyAgain, LightFMHybrid):
        fitted = cls().fit(data)
        fitted.save(tmp_path / cls.name)
        before = cls.load(tmp_path / cls.name).score(visitors(8, [0, 1]))
        assert before[0].any()
        cls.erase_rows(tmp_path / cls.name, [0])
        after = cls.load(tmp_path / cls.name).score(visitors(8, [0, 1]))
        assert np.allclose(after[1], before[1])  # others untouched
        if cls is BuyAgain:
            assert not after[0].any()
        else:  # only the item biases are left: the same for everyone the model knows nothing of
            assert np.allclose(after[0], cls.load(tmp_path / cls.name).score(visitors(8, [-1]))[0])
