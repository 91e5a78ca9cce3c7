"""``recommendations_for_visitor`` and ``similar_items``: consent, cold start, the live session,
and what may never be shown (a serving process picking up a new version: test_serving)."""

import uuid
from collections.abc import Callable

import pytest
from django.test import Client

from consent.services import consent_record
from consent.subjects import Subject
from personalization.model_store import active_model
from personalization.models import Product
from personalization.recommendations import (
    Context,
    UnknownStrategy,
    _precomputed,
    _subject_hashes,
    rank_for_visitor,
    recommendations_for_visitor,
    similar_items,
)
from tests.personalization.history import GARDEN, KITCHEN, build_shop, train
from tracking.authentication import user_token
from tracking.models import Source
from tracking.services import source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
Commit = Callable


def skus(result) -> list[str]:
    return [item.product.sku for item in result.items]


@pytest.fixture
def trained(commit: Commit) -> None:
    build_shop(6)
    train(commit)


def view(client: Client, drain: Callable[[], int], anonymous_id: str, *products: str, user_id: str = "") -> None:
    known = Source.objects.filter(name=f"Shop {anonymous_id}").first()  # the same browser again
    source = known if known is not None else source_create(name=f"Shop {anonymous_id}").source
    write_key = source.write_key
    # a signed-in customer's page carries their userToken, and pz.js sends it with their events
    proof = {"context": {"pz": {"userToken": user_token(source, user_id)}}} if user_id else {}
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": anonymous_id,
            **({"userId": user_id} if user_id else {}),
            **proof,
            "messageId": f"{anonymous_id}-{uuid.uuid4()}",
            "properties": {"product_id": sku},
        }
        for i, sku in enumerate(products)
    ]
    response = client.post("/v1/batch", {"batch": events, "writeKey": write_key}, content_type="application/json")
    assert response.json()["accepted"] == len(products), response.content
    drain()


def test_a_known_customer_gets_their_taste_with_reasons(trained: None) -> None:
    result = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=4)
    assert result.personalized and result.strategy == "personalized" and result.note == ""
    assert result.signals == ["history", "country"]
    assert set(skus(result)) <= set(KITCHEN)
    assert all(
        item.reason["recommender"] in {"ease", "buy_again", "lightfm", "trending", "content"} for item in result.items
    )
    assert [item.score for item in result.items] == sorted((item.score for item in result.items), reverse=True)
    garden_lover = recommendations_for_visitor(Subject(user_id="g0"), Context(), k=4)
    assert set(skus(garden_lover)) <= set(GARDEN)


def test_a_returning_customer_without_a_session_is_answered_from_the_list_computed_with_the_model(
    trained: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = active_model()
    assert model is not None and model.top is not None
    contexts = [
        Context(),
        Context(category="Kitchen"),
        Context(exclude=frozenset({"K1", "G2"})),
        Context(in_stock_only=False),
        Context(product="K2"),
    ]
    Product.objects.filter(sku="K3").update(in_stock=False)
    for user in [f"{taste}{n}" for taste in "kg" for n in range(6)]:
        row = model.user_row(_subject_hashes(Subject(user_id=user)))
        for context in contexts:
            country = context.country or str(model.user_countries[row])
            assert _precomputed(model, context, 5, row, country) is not None, (user, context)
            fast = rank_for_visitor(Subject(user_id=user), context, 5)
            with monkeypatch.context() as patched:
                patched.setattr(model, "top", None)  # scores every item, as for a visitor with a session
                live = rank_for_visitor(Subject(user_id=user), context, 5)
            assert (fast.rows, fast.signals) == (live.rows, live.signals), (user, context)
            # the same shares; the leading part may differ where two parts tie (each is scaled to
            # its own best, 1.0) and float32 sums in another order break the tie the other way
            assert [r["share"] for r in fast.reasons] == [r["share"] for r in live.reasons]
            assert {r["recommender"] for r in fast.reasons} <= set(model.top.parts)
            assert fast.scores == pytest.approx(live.scores, rel=1e-6)  # float32 weights, summed in another order
    # another country than the person's own: scored live
    row = model.user_row(_subject_hashes(Subject(user_id="k0")))
    assert _precomputed(model, Context(country="DE"), 5, row, "DE") is None
    garden = rank_for_visitor(Subject(user_id="k0"), Context(category="Garden"), 3)
    assert garden.personalized and {str(model.skus[r]) for r in garden.rows} <= set(GARDEN)


def test_a_precomputed_list_the_filters_empty_hands_over_to_live_scoring(settings, commit: Commit) -> None:
    settings.PZ_PRECOMPUTED_PER_PERSON = 3
    build_shop(4)
    train(commit)
    model = active_model()
    assert model is not None and model.top is not None and model.top.rows.shape[1] == 3
    row = model.user_row(_subject_hashes(Subject(user_id="k0")))
    # k0's three best are kitchen things: none is left in the garden, where the catalog has more
    assert {str(model.skus[r]) for r in model.top.rows[row]} <= set(KITCHEN)
    assert _precomputed(model, Context(category="Garden"), 2, row, "FR") is None
    result = recommendations_for_visitor(Subject(user_id="k0"), Context(category="Garden"), k=2)
    assert result.personalized and len(result.items) == 2 and set(skus(result)) <= set(GARDEN)


def test_without_consent_the_answer_is_trending_and_says_so(trained: None, commit: Commit) -> None:
    commit(lambda: consent_record(subject=Subject(user_id="k0"), choices={"personalization": False}, source="api"))
    result = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=4)
    assert not result.personalized
    assert (result.strategy, result.note) == ("trending", "no personalization consent")
    assert result.signals == []
    assert skus(result) == skus(recommendations_for_visitor(Subject(anonymous_id="someone"), Context(), k=4))


def test_a_new_visitor_gets_trending_in_their_context(trained: None, commit: Commit) -> None:
    stranger = Subject(anonymous_id="new-browser")
    commit(lambda: consent_record(subject=stranger, choices={"personalization": True}, source="banner"))
    result = recommendations_for_visitor(stranger, Context(category="Garden", country="DE"), k=3)
    assert (result.strategy, result.personalized) == ("trending", False)
    assert result.note.startswith("cold start")
    assert set(skus(result)) <= set(GARDEN)


def test_what_a_visitor_just_viewed_changes_their_next_list(
    trained: None, commit: Commit, client: Client, drain: Callable[[], int]
) -> None:
    browser = Subject(anonymous_id="browser-7")
    commit(
        lambda: consent_record(subject=browser, choices={"analytics": True, "personalization": True}, source="banner")
    )
    view(client, drain, "browser-7", "G1", "G2")
    result = recommendations_for_visitor(browser, Context(), k=3)
    assert result.personalized and result.signals == ["session"]
    assert set(skus(result)) <= set(GARDEN)

    # a kitchen customer browsing the garden: garden things move up their list at once
    def gap() -> float:
        """How far the best garden thing is behind the best kitchen thing in k1's list."""
        scores = {
            i.product.sku: i.score for i in recommendations_for_visitor(Subject(user_id="k1"), Context(), k=20).items
        }
        return max(scores[k] for k in KITCHEN if k in scores) - max(scores[g] for g in GARDEN if g in scores)

    before = gap()
    commit(lambda: consent_record(subject=Subject(user_id="k1"), choices={"analytics": True}, source="api"))
    view(client, drain, "k1-browser", "G3", "G4", "G3", user_id="k1")
    after = recommendations_for_visitor(Subject(user_id="k1"), Context(), k=8)
    assert after.signals == ["history", "session", "country"]
    assert gap() < before - 0.1


def test_inactive_out_of_stock_excluded_and_bought_items_are_never_shown_when_asked(trained: None) -> None:
    first = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=3)
    top = skus(first)[0]
    Product.objects.filter(sku=top).update(is_active=False)
    assert top not in skus(recommendations_for_visitor(Subject(user_id="k0"), Context(), k=10))
    second = skus(first)[1]
    Product.objects.filter(sku=second).update(in_stock=False)
    assert second not in skus(recommendations_for_visitor(Subject(user_id="k0"), Context(), k=10))
    allowed = recommendations_for_visitor(Subject(user_id="k0"), Context(in_stock_only=False), k=10)
    assert second in skus(allowed)
    fresh = recommendations_for_visitor(Subject(user_id="k0"), Context(exclude_purchased=True), k=3)
    assert not set(skus(fresh)) & {"K1", "K2", "K3", "K4"}  # k0 bought all four
    # the kitchen thing nobody bought, found by its text and category
    only_new = recommendations_for_visitor(Subject(user_id="k0"), Context(exclude_purchased=True), 1, "content")
    assert skus(only_new) == ["K5"]
    context = Context(product="K5", exclude=frozenset({"K3"}), category="Kitchen")
    assert not {"K5", "K3"} & set(skus(recommendations_for_visitor(Subject(user_id="k0"), context, k=10)))


def test_each_strategy_answers_and_an_unknown_one_is_refused(trained: None) -> None:
    for strategy in ("buy_again", "ease", "lightfm", "content", "bought_together", "viewed_together"):
        result = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=2, strategy=strategy)
        assert result.personalized and result.strategy == strategy and len(result.items) == 2, strategy
    popular = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=2, strategy="popular")
    assert (popular.strategy, popular.personalized) == ("popular", False)
    with pytest.raises(UnknownStrategy, match="unknown strategy 'magic'"):
        recommendations_for_visitor(Subject(user_id="k0"), Context(), strategy="magic")


def test_similar_items_of_each_kind_and_for_an_unknown_product(trained: None) -> None:
    bought = similar_items("K1", k=3, kind="bought_together")
    assert set(skus(bought)) <= {"K2", "K3", "K4"} and bought.items[0].reason == {
        "recommender": "bought_together",
        "because": "K1",
    }
    assert set(skus(similar_items("G1", k=3, kind="similar"))) <= set(GARDEN)
    unknown = similar_items("NO-SUCH-SKU", k=3)
    assert unknown.note == "unknown product" and len(unknown.items) == 3
    with pytest.raises(UnknownStrategy):
        similar_items("K1", kind="telepathy")


def test_before_any_training_the_shop_still_gets_bestsellers() -> None:
    build_shop(2)
    result = recommendations_for_visitor(Subject(user_id="k0"), Context(), k=3)
    assert (result.strategy, result.personalized, result.model_version) == ("bestsellers", False, None)
    assert len(result.items) == 3
