"""A campaign's rules and audience, one test each (pure: no database)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from personalization.campaign_rules import (
    Audience,
    Boost,
    CampaignChoice,
    Candidate,
    Pin,
    Rules,
    Shown,
    VisitorFacts,
    campaign_choose,
    rules_apply,
)
from personalization.exploration import epsilon_greedy, thompson

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def item(
    sku: str, score: float, category: str = "Home", brand: str = "", price: float = 10.0, stock: bool = True
) -> Candidate:
    return Candidate(sku=sku, score=score, category=category, brand=brand, price=price, in_stock=stock)


def skus(shown: list[Shown]) -> list[str]:
    return [s.candidate.sku for s in shown]


RANKED = [
    item("A", 9, "Home > Kitchen", "Falcon", 5.0),
    item("B", 8, "Home > Kitchen", "Falcon", 12.0, stock=False),
    item("C", 7, "Home > Garden", "Acme", 30.0),
    item("D", 6, "Toys", "Acme", 14.0),
    item("E", 5, "Home > Kitchen", "Other", 25.0),
    item("F", 4, "Toys", "", 3.0),
]


def test_without_rules_the_ranking_stands() -> None:
    shown = rules_apply(RANKED, Rules(in_stock_only=False), k=4)
    assert skus(shown) == ["A", "B", "C", "D"]
    assert [s.position for s in shown] == [1, 2, 3, 4]
    assert all(s.rules == () for s in shown)


def test_in_stock_only_is_on_by_default() -> None:
    assert skus(rules_apply(RANKED, Rules(), k=3)) == ["A", "C", "D"]


def test_excluded_skus_are_never_shown() -> None:  # bought within the window, in the cart, on the page
    assert skus(rules_apply(RANKED, Rules(exclude_skus=frozenset({"A", "D"})), k=3)) == ["C", "E", "F"]


def test_include_and_exclude_categories_cover_their_subtrees() -> None:
    assert skus(rules_apply(RANKED, Rules(include_categories=("Home",)), k=5)) == ["A", "C", "E"]
    assert skus(rules_apply(RANKED, Rules(exclude_categories=("Home > Kitchen",)), k=5)) == ["C", "D", "F"]
    assert skus(rules_apply(RANKED, Rules(include_categories=("Home > Kit",)), k=5)) == []  # a path, not a prefix


def test_include_and_exclude_brands_ignore_case() -> None:
    assert skus(rules_apply(RANKED, Rules(include_brands=frozenset({"acme"})), k=5)) == ["C", "D"]
    assert skus(rules_apply(RANKED, Rules(exclude_brands=frozenset({"FALCON"})), k=5)) == ["C", "D", "E", "F"]


def test_absolute_price_range() -> None:
    assert skus(rules_apply(RANKED, Rules(min_price=10, max_price=25), k=5)) == ["D", "E"]


def test_price_relative_to_the_product_on_the_page_makes_an_upsell() -> None:
    upsell = Rules(min_price_ratio=1.2)
    assert skus(rules_apply(RANKED, upsell, k=5, context_price=20.0)) == ["C", "E"]  # at least 24
    assert skus(rules_apply(RANKED, Rules(max_price_ratio=0.5), k=5, context_price=20.0)) == ["A", "F"]
    assert skus(rules_apply(RANKED, upsell, k=5)) == ["A", "C", "D", "E", "F"]  # no product on the page


def test_pins_take_their_positions_and_leave_the_rest_in_order() -> None:
    pinned = {"Z": item("Z", 0, "Sale"), "OUT": item("OUT", 0, stock=False)}
    rules = Rules(pins=(Pin("Z", 2), Pin("OUT", 1)))
    shown = rules_apply(RANKED, rules, k=4, pinned=pinned)
    assert skus(shown) == ["A", "Z", "C", "D"]  # the pinned product out of stock is not shown
    assert shown[1].rules == ("pinned at 2",)
    again = rules_apply([*RANKED, item("Z", 100)], Rules(pins=(Pin("Z", 3),)), k=3, pinned=pinned)
    assert skus(again) == ["A", "C", "Z"]  # pinned, not also first


def test_boosts_lift_brands_and_categories() -> None:
    boosted = rules_apply(RANKED, Rules(boosts=(Boost("brand", "acme", 3.0),)), k=3)
    assert skus(boosted) == ["C", "D", "A"]
    assert boosted[0].rules == ("boosted ×3 (brand acme)",)
    toys = rules_apply(RANKED, Rules(boosts=(Boost("category", "Toys", 10.0),)), k=2)
    assert skus(toys) == ["D", "A"]  # multiplicative: the last toy, ×10, is still below the best item


def test_a_per_category_cap() -> None:
    kitchen_heavy = [item(str(i), 10 - i, "Home > Kitchen") for i in range(5)] + [item("G", 1, "Garden")]
    assert skus(rules_apply(kitchen_heavy, Rules(max_per_category=2), k=4)) == ["0", "1", "G"]


def test_diversity_trades_relevance_for_variety() -> None:
    similar = [
        item("K1", 10, "Kitchen"),
        item("K2", 9.9, "Kitchen"),
        item("K3", 9.8, "Kitchen"),
        item("G1", 8, "Garden"),
    ]
    plain = rules_apply(similar, Rules(), k=3)
    varied = rules_apply(similar, Rules(diversity=0.5), k=3)
    assert skus(plain) == ["K1", "K2", "K3"]
    assert skus(varied) == ["K1", "G1", "K2"]
    assert varied[1].rules == ("moved up for diversity",)


def test_each_product_shows_once_at_its_best() -> None:
    assert skus(rules_apply([item("A", 5), item("B", 4), item("A", 1)], Rules(), k=3)) == ["A", "B"]


# --- audience and priority -----------------------------------------------------------------------------

VISITOR = VisitorFacts(returning=True, orders=2, country="GB", device="mobile")


@pytest.mark.parametrize(
    ("audience", "matches"),
    [
        (Audience(), True),
        (Audience(visitors="new"), False),
        (Audience(visitors="returning"), True),
        (Audience(customers="without_orders"), False),
        (Audience(customers="with_orders"), True),
        (Audience(countries=frozenset({"FR", "DE"})), False),
        (Audience(countries=frozenset({"GB"})), True),
        (Audience(devices=frozenset({"desktop"})), False),
        (Audience(devices=frozenset({"mobile", "tablet"})), True),
    ],
)
def test_audiences(audience: Audience, matches: bool) -> None:
    assert audience.matches(VISITOR) is matches


def test_the_highest_priority_live_campaign_whose_audience_matches_wins() -> None:
    everyone = CampaignChoice(1, 0, Audience())
    french = CampaignChoice(2, 10, Audience(countries=frozenset({"FR"})))
    mobile = CampaignChoice(3, 5, Audience(devices=frozenset({"mobile"})))
    later = CampaignChoice(4, 50, Audience(), starts_at=NOW + timedelta(days=1))
    over = CampaignChoice(5, 50, Audience(), ends_at=NOW)
    tie = CampaignChoice(6, 5, Audience())
    campaigns = [everyone, french, mobile, later, over, tie]
    assert campaign_choose(campaigns, VISITOR, NOW) == mobile  # priority 5; the tie goes to the older campaign
    assert campaign_choose(campaigns, VisitorFacts(False, 0, "FR", "desktop"), NOW) == french
    assert campaign_choose(campaigns, VisitorFacts(False, 0, "US", "desktop"), NOW + timedelta(days=2)) == later
    assert campaign_choose([french], VISITOR, NOW) is None


# --- exploration ---------------------------------------------------------------------------------------


def test_epsilon_greedy_logs_the_probability_of_each_shown_item() -> None:
    ranked = ["a", "b", "c", "d"]
    greedy = epsilon_greedy(ranked, 3, 0.0, random.Random(1))
    assert (greedy.items, greedy.propensities) == (["a", "b", "c"], [1.0, 1.0, 1.0])
    explored = epsilon_greedy(ranked, 2, 1.0, random.Random(1))
    assert explored.propensities == [pytest.approx(1 / 4), pytest.approx(1 / 3)]
    # over many draws, the first slot is the best item with probability 1 - ε + ε/4
    rng = random.Random(7)
    firsts = [epsilon_greedy(ranked, 1, 0.2, rng).items[0] for _ in range(4000)]
    assert firsts.count("a") / 4000 == pytest.approx(0.8 + 0.2 / 4, abs=0.03)
    assert epsilon_greedy(ranked, 1, 0.2, random.Random(3)).propensities[0] in (pytest.approx(0.85), 0.05)


def test_thompson_sampling_favours_what_is_clicked_and_estimates_propensities() -> None:
    stats = {"a": (1000, 10), "b": (1000, 300), "c": (0, 0)}
    explored = thompson(["a", "b", "c"], 2, stats, random.Random(5), samples=400)
    assert explored.items[0] in {"b", "c"}  # b's rate is high; c is unknown, so it is sometimes drawn high
    assert all(0 < p <= 1 for p in explored.propensities)
    assert thompson(["a", "b"], 2, {"a": (10_000, 9_000), "b": (10_000, 10)}, random.Random(1)).items == ["a", "b"]
