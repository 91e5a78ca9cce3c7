"""The recommendation API: campaigns, fallbacks, the latency budget, consent, caching, exposures.

Serving computes in a worker thread (the latency budget), which reads the database on its own
connection: these tests commit their data (transactional)."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from consent.services import consent_record
from consent.subjects import Subject
from personalization import serving, session_lists
from personalization.model_store import active_model, forget_loaded_model
from personalization.models import Campaign, Exposure, Placement, Product
from personalization.recommenders.hybrid import TopLists
from personalization.services import model_version_activate, model_version_train, product_bulk_set_active
from personalization.services.campaigns import campaign_save
from personalization.services.session_lists import session_lists_score_changed
from personalization.serving_views import RecommendationParams, RecommendationQuery
from tests.conftest import ROOT
from tests.factories import ProductFactory
from tests.personalization.history import FAST, GARDEN, KITCHEN, build_shop, train
from tracking.authentication import user_token
from tracking.models import Event, Profile, Source
from tracking.services import source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
Commit = Callable[..., Any]


@pytest.fixture
def shop(commit: Commit) -> dict[str, str]:
    build_shop(6)
    train(commit)
    # Budgets of seconds: a loaded test machine must not turn an answer into the fallback
    # (the budget has a test of its own).
    Placement.objects.update(latency_budget_ms=10_000)
    keys = source_create(name="Web shop")
    return {"writeKey": keys.write_key, "secret": keys.secret_key}


def ask(client: Client, shop: dict[str, str], headers: dict[str, Any] | None = None, **params: Any) -> Any:
    response = client.get("/api/v1/recommendations", {"writeKey": shop["writeKey"], **params}, **(headers or {}))
    assert response.status_code == 200, response.content
    return response


def skus(response: Any) -> list[str]:
    return [item["product_id"] for item in response.json()["items"]]


def home(**changes: Any) -> Campaign:
    campaign = Campaign.objects.get(placement__key="home")
    for name, value in changes.items():
        setattr(campaign, name, value)
    return campaign_save(campaign=campaign, by="test")


@pytest.fixture
def strategy(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Any], None]:
    """Register a strategy's behaviour for a test (it is the serving layer's own registry)."""

    def register(name: str, function: Any) -> None:
        monkeypatch.setitem(serving.STRATEGY_FUNCTIONS, name, function)

    return register


def test_a_known_customer_with_a_user_token_gets_a_personalized_list(client: Client, shop: dict[str, str]) -> None:
    source = Source.objects.get(name="Web shop")
    response = ask(client, shop, placement="home", userId="k0", userToken=user_token(source, "k0"), limit=4)
    body = response.json()
    assert body["personalized"] is True and body["strategy"] == "personalized" and body["note"] == ""
    assert body["campaign"] == {
        "id": Campaign.objects.get(placement__key="home").pk,
        "name": "Recommended for you",
        "version": 1,
    }
    assert set(skus(response)) <= set(KITCHEN) and len(body["items"]) == 4
    assert [item["position"] for item in body["items"]] == [1, 2, 3, 4]
    first = body["items"][0]
    assert set(first) == {"product_id", "name", "url", "image_url", "price", "currency", "position"}
    assert response["Cache-Control"] == "private, no-store"


def test_a_browser_cannot_ask_in_someone_elses_name(client: Client, shop: dict[str, str]) -> None:
    forged = client.get("/api/v1/recommendations", {"writeKey": shop["writeKey"], "placement": "home", "userId": "k0"})
    assert forged.status_code == 400 and "userToken" in forged.json()["fields"]
    ignored = ask(client, shop, placement="home", userId="k0", userToken="0" * 64, anonymousId="browser-x")
    assert ignored.json()["personalized"] is False  # served as the unknown browser, not as k0
    server = client.get(
        "/api/v1/recommendations", {"placement": "home", "userId": "k0"}, HTTP_AUTHORIZATION=f"Bearer {shop['secret']}"
    )
    assert server.status_code == 200 and server.json()["personalized"] is True  # the shop's server may


def test_without_consent_the_answer_is_not_personalized_and_cacheable(
    client: Client, shop: dict[str, str], commit: Commit
) -> None:
    commit(lambda: consent_record(subject=Subject(user_id="k0"), choices={"personalization": False}, source="api"))
    response = client.get(
        "/api/v1/recommendations", {"placement": "home", "userId": "k0"}, HTTP_AUTHORIZATION=f"Bearer {shop['secret']}"
    )
    body = response.json()
    assert (body["personalized"], body["note"], body["strategy"]) == (False, "no personalization consent", "trending")
    assert len(body["items"]) == 8
    assert response["Cache-Control"] == "public, max-age=60"


def test_gpc_withdraws_personalization_where_the_shop_says_so(
    client: Client, shop: dict[str, str], settings: Any
) -> None:
    settings.PZ_GPC_WITHDRAWS = ["marketing", "personalization"]
    params = {"placement": "home", "userId": "k0"}
    bearer: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {shop['secret']}"}
    assert client.get("/api/v1/recommendations", params, **bearer).json()["personalized"] is True
    with_gpc = client.get("/api/v1/recommendations", params, HTTP_SEC_GPC="1", **bearer).json()
    assert (with_gpc["personalized"], with_gpc["note"]) == (False, "no personalization consent")


def test_bad_requests_say_which_parameter(client: Client, shop: dict[str, str]) -> None:
    cases = [
        ({"placement": "nowhere", "anonymousId": "a"}, "placement"),
        ({"placement": "home"}, "anonymousId"),
        ({"placement": "home", "anonymousId": "a", "limit": "0"}, "limit"),
        ({"placement": "home", "anonymousId": "a", "limit": "many"}, "limit"),
        ({"placement": "home", "anonymousId": "a", "country": "France"}, "country"),
        ({"placement": "bad key!", "anonymousId": "a"}, "placement"),
    ]
    for params, field in cases:
        response = client.get("/api/v1/recommendations", {"writeKey": shop["writeKey"], **params})
        assert response.status_code == 400, params
        assert field in response.json()["fields"], (params, response.json())
    assert client.get("/api/v1/recommendations", {"placement": "home", "anonymousId": "a"}).status_code == 401
    assert (
        client.get(
            "/api/v1/recommendations", {"placement": "home", "anonymousId": "a", "writeKey": "pzw_nope"}
        ).status_code
        == 401
    )


def test_cors_for_the_sources_origins(
    client: Client, shop: dict[str, str], drain: Callable[[], int], commit: Commit
) -> None:
    Source.objects.filter(name="Web shop").update(allowed_origins=["https://shop.example.com"])
    for visitor in ("a", "b"):  # both would be logged
        commit(
            lambda v=visitor: consent_record(
                subject=Subject(anonymous_id=v), choices={"analytics": True}, source="banner"
            )
        )
    allowed = ask(client, shop, {"HTTP_ORIGIN": "https://shop.example.com"}, placement="home", anonymousId="a")
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    drain()
    assert Exposure.objects.count() == 1
    # An origin the source does not list: refused readably (the widget does not retry), nothing logged.
    other = client.get(
        "/api/v1/recommendations",
        {"writeKey": shop["writeKey"], "placement": "home", "anonymousId": "b"},
        HTTP_ORIGIN="https://evil.example.com",
    )
    assert (other.status_code, other.json()["code"]) == (403, "origin_not_allowed")
    assert other["Access-Control-Allow-Origin"] == "https://evil.example.com"
    drain()
    assert Exposure.objects.count() == 1


def test_the_highest_priority_campaign_for_the_audience_wins(client: Client, shop: dict[str, str]) -> None:
    placement = Placement.objects.get(key="home")
    german = campaign_save(
        campaign=Campaign(
            placement=placement, name="Für Sie", strategy="trending", priority=5, audience_countries=["DE"]
        ),
        by="test",
    )
    body = ask(client, shop, placement="home", anonymousId="a", country="de").json()
    assert body["campaign"]["id"] == german.pk and body["strategy"] == "trending"
    assert (
        ask(client, shop, placement="home", anonymousId="a", country="FR").json()["campaign"]["name"]
        == "Recommended for you"
    )


def test_a_visitor_is_new_for_their_whole_first_visit_and_returning_when_back(
    client: Client, shop: dict[str, str], commit: Commit, drain: Callable[[], int]
) -> None:
    welcome = campaign_save(
        campaign=Campaign(
            placement=Placement.objects.get(key="home"),
            name="Welcome",
            strategy="trending",
            priority=5,
            audience_visitors=Campaign.Visitors.NEW,
        ),
        by="test",
    )
    now = timezone.now()

    def visit(anonymous_id: str, *minutes_ago: int) -> str:
        commit(
            lambda: consent_record(
                subject=Subject(anonymous_id=anonymous_id),
                choices={"analytics": True, "personalization": True},
                source="banner",
            )
        )
        events = [
            {
                "type": "page",
                "anonymousId": anonymous_id,
                "messageId": f"{anonymous_id}-{m}",
                "timestamp": (now - timedelta(minutes=m)).isoformat(),
            }
            for m in minutes_ago
        ]
        response = client.post(
            "/v1/batch",
            {"batch": events},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {shop['secret']}",
        )
        assert response.json()["accepted"] == len(events)
        drain()
        for _ in range(3):  # the answers' exposures are not the visitor's doing: they change nothing
            answer = ask(client, shop, placement="home", anonymousId=anonymous_id).json()
            drain()
        return str(answer["campaign"]["name"])

    assert visit("first-visit", 25, 10, 1) == welcome.name  # one session, however many pages
    assert visit("back-today", 300, 2) == "Recommended for you"  # a session before this one
    assert visit("back-now", 45) == "Recommended for you"  # this answer opens their second session
    profile = Profile.objects.get(key="a:first-visit")
    assert (profile.sessions, profile.page_views) == (1, 3)
    assert profile.last_seen_at is not None
    assert abs(profile.last_seen_at - (now - timedelta(minutes=1))) < timedelta(seconds=1)  # not the answers' time
    assert set(Exposure.objects.filter(anonymous_id="first-visit").values_list("placement", flat=True)) == {"home"}
    assert not Event.objects.filter(event="Recommendations Served").exclude(session_id="").exists()


def test_an_empty_strategy_hands_over_to_the_next(client: Client, shop: dict[str, str], strategy: Any) -> None:
    strategy("similar", lambda name, situation, k: [])
    body = ask(client, shop, placement="product-similar", product="K1", anonymousId="a").json()
    assert body["strategy"] == "viewed_together" and len(body["items"]) > 0  # the first fallback


def test_a_failing_strategy_hands_over_to_the_next(client: Client, shop: dict[str, str], strategy: Any) -> None:
    def broken(name: str, situation: Any, k: int) -> list[Any]:
        raise RuntimeError("the model file is corrupt")

    strategy("similar", broken)
    strategy("viewed_together", broken)
    body = ask(client, shop, placement="product-similar", product="K1", anonymousId="a").json()
    assert body["strategy"] == "trending" and len(body["items"]) == 8


def slow_home(commit: Commit, anonymous_id: str) -> None:
    Placement.objects.filter(key="home").update(latency_budget_ms=30)
    serving.forget_placements()
    commit(
        lambda: consent_record(
            subject=Subject(anonymous_id=anonymous_id), choices={"personalization": True}, source="api"
        )
    )


def test_a_strategy_slower_than_the_budget_gives_the_precomputed_list_and_is_counted(
    client: Client, shop: dict[str, str], strategy: Any, commit: Commit
) -> None:
    """A strategy that queries the database runs in the budget's worker: the answer comes back by
    the deadline while the strategy is still blocked."""
    slow_home(commit, "slow")
    release, finished, fallbacks = threading.Event(), threading.Event(), []

    def slow(name: str, situation: Any, k: int) -> list[Any]:
        Placement.objects.exists()  # a query: refused in the request's thread, run in the pool's
        release.wait(5)  # blocked (a slow query, a stuck service) until the test has its answer
        finished.set()
        return []

    def fallback(name: str, situation: Any, k: int) -> list[Any]:
        fallbacks.append(name)
        return []

    strategy("personalized", slow)
    strategy("trending", fallback)
    try:
        body = ask(client, shop, placement="home", anonymousId="slow").json()
        answered_while_blocked = not finished.is_set()
    finally:
        release.set()
    assert answered_while_blocked
    assert (body["personalized"], body["strategy"], body["campaign"]) == (False, "trending", None)
    assert body["note"] == "the precomputed list (over the latency budget)" and len(body["items"]) == 8
    day = timezone.now().strftime("%Y-%m-%d")
    assert serving.fallback_counts()[(day, "home", "budget")] == 1
    # the abandoned computation stops at its next strategy instead of running on for nobody
    assert finished.wait(5)
    time.sleep(0.2)
    assert fallbacks == []


def test_an_answer_computed_in_the_request_thread_past_the_budget_is_replaced_and_counted(
    client: Client, shop: dict[str, str], strategy: Any, commit: Commit
) -> None:
    slow_home(commit, "late")
    fallbacks: list[str] = []

    def late(name: str, situation: Any, k: int) -> list[Any]:  # memory only, so not refused
        time.sleep(0.1)
        return []

    strategy("personalized", late)

    def fallback(name: str, situation: Any, k: int) -> list[Any]:
        fallbacks.append(name)
        return []

    strategy("trending", fallback)
    body = ask(client, shop, placement="home", anonymousId="late").json()
    assert body["note"] == "the precomputed list (over the latency budget)" and len(body["items"]) == 8
    day = timezone.now().strftime("%Y-%m-%d")
    assert serving.fallback_counts()[(day, "home", "budget")] == 1
    assert fallbacks == []  # it stopped at the next strategy


def threads_of(strategy: Any, name: str, then: Callable[..., list[Any]]) -> list[str]:
    """Register ``name`` to note the thread each call runs in, then do what ``then`` does."""
    seen: list[str] = []

    def noting(strategy_name: str, situation: Any, k: int) -> list[Any]:
        seen.append(threading.current_thread().name)
        return then(strategy_name, situation, k)

    strategy(name, noting)
    return seen


def test_memory_only_work_is_served_in_the_request_thread_and_a_query_moves_it_to_the_pool(
    client: Client, shop: dict[str, str], strategy: Any, settings: Any
) -> None:
    home(exclude_purchased=False)  # (excluding what a customer bought reads their orders)
    own = serving.STRATEGY_FUNCTIONS["personalized"]
    source = Source.objects.get(name="Web shop")
    asked: dict[str, Any] = {"placement": "home", "userId": "k0", "userToken": user_token(source, "k0"), "limit": 4}
    ask(client, shop, **asked)  # the process's catalog snapshot, read (queries) for the new model
    settings.PZ_CATALOG_CHANGES_SECONDS = 60.0  # and not again (a server's keeper thread reads it)
    seen = threads_of(strategy, "personalized", own)
    first = ask(client, shop, **asked).json()
    assert seen == [threading.current_thread().name]  # the precomputed list: no hand-off

    def querying(name: str, situation: Any, k: int) -> list[Any]:
        Placement.objects.exists()
        return own(name, situation, k)

    seen = threads_of(strategy, "personalized", querying)
    second = ask(client, shop, **asked).json()
    assert seen[0] == threading.current_thread().name and seen[1].startswith("pz-serve") and len(seen) == 2
    assert skus_of(second) == skus_of(first) and second["personalized"] is True


def test_a_product_page_is_served_in_the_request_thread_from_the_catalog_snapshot(
    client: Client, shop: dict[str, str], strategy: Any, settings: Any
) -> None:
    """The product on the page (its price, for an upsell) and the pinned products are read from
    the process's catalog snapshot: no query, so no hand-off to the pool."""
    for sku, price in (("K1", "5.00"), ("K2", "5.50")):
        product = Product.objects.get(sku=sku)
        product.price = Decimal(price)
        product.save()
    campaign = Campaign.objects.get(placement__key="product-similar")
    campaign.min_price_ratio, campaign.pins = Decimal("1.2"), [{"sku": "K4", "position": 1}]
    campaign_save(campaign=campaign, by="test")
    server = {"HTTP_AUTHORIZATION": f"Bearer {shop['secret']}"}  # a customer with consent: not a shared answer
    asked: dict[str, Any] = {"placement": "product-similar", "product": "K1", "userId": "k0", "limit": 4}
    ask(client, shop, server, **asked)  # the process's catalog snapshot brought up to date (queries)
    settings.PZ_CATALOG_CHANGES_SECONDS = 60.0  # and not again (a server's keeper thread reads it)
    seen = threads_of(strategy, "similar", serving.STRATEGY_FUNCTIONS["similar"])
    body = ask(client, shop, server, **asked).json()
    assert seen == [threading.current_thread().name]
    assert skus_of(body)[0] == "K4" and len(body["items"]) == 4
    assert all(Decimal(item["price"]) >= Decimal("6.00") for item in body["items"])  # K2 at 5.50 is left out
    assert "K1" not in skus_of(body)


def test_a_page_of_a_product_the_model_does_not_know_is_read_for_its_price(
    client: Client, shop: dict[str, str]
) -> None:
    """Added since the training, and no longer sold: its price still sets an upsell's floor."""
    ProductFactory.create(sku="NEW1", price=Decimal("5.00"), is_active=False)
    product = Product.objects.get(sku="K2")
    product.price = Decimal("5.50")
    product.save()
    campaign = Campaign.objects.get(placement__key="product-similar")
    campaign.min_price_ratio = Decimal("1.2")
    campaign_save(campaign=campaign, by="test")
    server = {"HTTP_AUTHORIZATION": f"Bearer {shop['secret']}"}
    body = ask(client, shop, server, placement="product-similar", product="NEW1", userId="k0", limit=8).json()
    assert len(body["items"]) == 8 and "K2" not in skus_of(body)
    assert all(Decimal(item["price"]) >= Decimal("6.00") for item in body["items"])


def test_a_live_scoring_moves_to_the_pool(
    client: Client, shop: dict[str, str], strategy: Any, settings: Any, commit: Commit, drain: Callable[[], int]
) -> None:
    home(limit=4, exclude_purchased=False)
    commit(lambda: consent_record(subject=Subject(user_id="k1"), choices={"analytics": True}, source="api"))
    view = {"type": "track", "event": "Product Viewed", "userId": "k1", "anonymousId": "k1-browser"}
    events = [{**view, "messageId": f"k1-live-{sku}", "properties": {"product_id": sku}} for sku in ("G3", "G4")]
    client.post(
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop['secret']}"
    )
    drain()
    settings.PZ_SESSION_LISTS = False  # no list scored with the session: scored live, over every item
    server = {"HTTP_AUTHORIZATION": f"Bearer {shop['secret']}"}
    ask(client, shop, server, placement="home", userId="k1")  # the catalog snapshot read
    settings.PZ_CATALOG_CHANGES_SECONDS = 60.0  # and not again: no query, only the scoring moves it
    seen = threads_of(strategy, "personalized", serving.STRATEGY_FUNCTIONS["personalized"])
    body = ask(client, shop, server, placement="home", userId="k1").json()
    assert body["personalized"] is True and len(body["items"]) == 4
    assert seen[0] == threading.current_thread().name and seen[1].startswith("pz-serve") and len(seen) == 2


def test_business_rules_apply_through_the_api(client: Client, shop: dict[str, str]) -> None:
    home(include_categories=["Garden"], pins=[{"sku": "X1", "position": 1}], limit=3)
    body = ask(client, shop, placement="home", anonymousId="a").json()
    assert skus_of(body)[0] == "X1" and set(skus_of(body)[1:]) <= set(GARDEN) and len(body["items"]) == 3
    product_bulk_set_active(skus=["X1"], active=False)
    assert "X1" not in skus_of(ask(client, shop, placement="home", anonymousId="b").json())


def skus_of(body: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in body["items"]]


def test_every_answer_is_logged_as_an_exposure_through_the_stream(
    client: Client, shop: dict[str, str], commit: Commit, drain: Callable[[], int]
) -> None:
    commit(
        lambda: consent_record(subject=Subject(anonymous_id="watched"), choices={"analytics": True}, source="banner")
    )
    body = ask(client, shop, placement="home", anonymousId="watched", limit=3).json()
    ask(client, shop, placement="home", anonymousId="unconsented", limit=3)  # no analytics: nothing is logged
    drain()
    exposure = Exposure.objects.get()
    assert str(exposure.rec_id) == body["rec_id"]
    assert (exposure.placement, exposure.anonymous_id, exposure.strategy) == ("home", "watched", body["strategy"])
    assert exposure.campaign_id == body["campaign"]["id"] and exposure.campaign_version == 1
    assert [i["sku"] for i in exposure.items] == skus_of(body)
    assert [i["position"] for i in exposure.items] == [1, 2, 3]


def test_exploration_logs_propensities(
    client: Client, shop: dict[str, str], commit: Commit, drain: Callable[[], int]
) -> None:
    home(exploration="epsilon_greedy", exploration_rate=0.5)
    commit(
        lambda: consent_record(subject=Subject(anonymous_id="explorer"), choices={"analytics": True}, source="banner")
    )
    ask(client, shop, placement="home", anonymousId="explorer", limit=4)
    drain()
    propensities = [item["propensity"] for item in Exposure.objects.get().items]
    assert len(propensities) == 4 and all(0 < p <= 1 for p in propensities)


def test_a_campaign_change_is_versioned_and_can_be_rolled_back(client: Client, shop: dict[str, str]) -> None:
    from personalization.services.campaigns import campaign_rollback

    changed = home(strategy="trending", limit=2)
    assert changed.version == 2 and changed.versions.count() == 2
    assert ask(client, shop, placement="home", anonymousId="a").json()["campaign"]["version"] == 2
    assert len(ask(client, shop, placement="home", anonymousId="a").json()["items"]) == 2
    unchanged = home(strategy="trending", limit=2)
    assert unchanged.version == 2  # saving the same settings is no new version
    rolled = campaign_rollback(campaign=changed, version=1, by="test")
    assert (rolled.version, rolled.strategy, rolled.limit) == (3, "personalized", None)
    assert rolled.versions.get(version=3).note == "Rolled back to version 1."
    assert ask(client, shop, placement="home", anonymousId="a").json()["campaign"]["version"] == 3


def test_the_api_is_in_the_openapi_schema(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/recommendations"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"placement", "anonymousId", "userId", "userToken", "product", "limit"} <= names
    assert "rec_id" in schema["components"]["schemas"]["Recommendations"]["properties"]


def test_answers_that_depend_on_no_one_are_shared_through_the_cache(client: Client, shop: dict[str, str]) -> None:
    first = ask(client, shop, placement="home", anonymousId="one", limit=4).json()
    second = ask(client, shop, placement="home", anonymousId="two", limit=4).json()
    assert first["personalized"] is False and skus_of(first) == skus_of(second)
    assert first["rec_id"] != second["rec_id"]  # each answer is its own exposure
    product_bulk_set_active(skus=[skus_of(first)[0]], active=False)
    third = ask(client, shop, placement="home", anonymousId="three", limit=4).json()
    assert skus_of(third) == skus_of(first)[1:]  # from the cache, without the product deactivated since


def test_a_shared_answer_is_computed_again_with_a_new_model_version(
    client: Client, shop: dict[str, str], commit: Commit, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list[str] = []
    cache_answer = serving._cache_answer

    def storing(key: str, served: serving.Served) -> None:
        stored.append(key)
        cache_answer(key, served)

    monkeypatch.setattr(serving, "_cache_answer", storing)
    for browser in ("one", "two"):
        ask(client, shop, placement="home", anonymousId=browser, limit=4)
    assert len(stored) == 1  # the second was the first's, from the cache
    train(commit)  # a new version serves: the answers of the one before are not reused
    ask(client, shop, placement="home", anonymousId="three", limit=4)
    assert len(stored) == 2 and stored[1] != stored[0]


def test_the_preview_shows_exactly_what_a_customer_gets_with_reasons(
    admin_client: Client, commit: Callable[..., Any]
) -> None:
    build_shop(4)
    train(commit)
    Placement.objects.update(latency_budget_ms=10_000)
    campaign = Campaign.objects.get(placement__key="home")
    page = admin_client.get(f"/admin/personalization/campaign/{campaign.pk}/preview/", {"customer": "k0"})
    result = page.context["result"]
    assert result.personalized and len(result.items) == 8
    html = page.content.decode()
    assert result.items[0].product.name in html and "personalized" in html
    unknown = admin_client.get(f"/admin/personalization/campaign/{campaign.pk}/preview/", {"customer": "nobody"})
    assert "There is no customer nobody." in unknown.content.decode()


def test_a_serving_process_picks_up_a_new_version_without_a_restart(commit: Commit) -> None:
    if not settings.REDIS_URL:
        pytest.skip("processes share the active version through Redis")
    build_shop(3)
    first = train(commit)
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    script = (
        "import django, sys, time; django.setup()\n"
        "from personalization.model_store import active_model\n"
        "seen = None\n"
        "deadline = time.time() + 60\n"
        "while time.time() < deadline:\n"
        "    model = active_model()\n"
        "    version = model.version_id if model else None\n"
        "    if version != seen:\n"
        "        print(version, flush=True); seen = version\n"
        "    if version == int(sys.argv[1]): break\n"
        "    time.sleep(0.05)\n"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,
        "PZ_MODEL_DIR": str(settings.PZ_MODEL_DIR),
        "PZ_MODEL_CHECK_SECONDS": "0.2",
    }
    second = commit(lambda: model_version_train(trigger="test", params=FAST, activation="never"))
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(second.pk)], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == str(first.pk)  # serving from the first
        commit(lambda: model_version_activate(version=second, by="test"))
        assert process.stdout.readline().strip() == str(second.pk)  # and, without a restart, the second
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


def test_the_documented_parameters_are_the_validated_ones() -> None:
    """The serializer describes the query in the OpenAPI schema; msgspec checks it per request."""
    documented = set(RecommendationQuery().fields) - {"writeKey"}  # the key is read by authentication
    assert documented == set(RecommendationParams.__struct_fields__)


def test_a_worker_loads_the_model_and_the_catalog_before_its_first_request(commit: Commit) -> None:
    assert serving.warm_up() is False  # no model yet: nothing to load, and no error
    build_shop(2)
    train(commit)
    forget_loaded_model()
    assert serving.warm_up() is True
    model = active_model()
    assert model is not None and "catalog" in model.memo  # loaded before any request


def test_a_browsing_visitor_is_served_the_list_scored_with_their_session(
    client: Client, shop: dict[str, str], commit: Commit, drain: Callable[[], int], settings: Any
) -> None:
    """Serving reads the list scored when the session changed (personalization.session_lists) and
    answers from it, as it would have scored live."""
    home(limit=4, exclude_purchased=False)
    commit(lambda: consent_record(subject=Subject(user_id="k1"), choices={"analytics": True}, source="api"))
    view = {"type": "track", "event": "Product Viewed", "userId": "k1", "anonymousId": "k1-browser"}
    events = [{**view, "messageId": f"k1-view-{sku}", "properties": {"product_id": sku}} for sku in ("G3", "G4")]
    response = client.post(
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop['secret']}"
    )
    assert response.json()["accepted"] == 2
    drain()
    assert session_lists_score_changed() == 1
    server = {"HTTP_AUTHORIZATION": f"Bearer {shop['secret']}"}
    ahead = ask(client, shop, server, placement="home", userId="k1").json()
    settings.PZ_SESSION_LISTS = False
    live = ask(client, shop, server, placement="home", userId="k1").json()
    assert ahead["personalized"] and skus_of(ahead) == skus_of(live) and len(skus_of(ahead)) == 4
    # the stored list is what is served: the same list backwards (same fingerprint) is served backwards
    settings.PZ_SESSION_LISTS = True
    (entry,) = session_lists.lists_read(["u:k1"])
    assert entry is not None
    fingerprint = entry[: session_lists.FINGERPRINT_BYTES]
    stored = session_lists.matching([entry], fingerprint)
    assert stored is not None
    backwards = TopLists(stored.parts, stored.rows[::-1], stored.scores, stored.leading, stored.shares)
    model = active_model()
    assert model is not None
    session_lists.lists_write({"u:k1": session_lists.entry_of(fingerprint, model.version_id, backwards)})
    served = ask(client, shop, server, placement="home", userId="k1").json()
    assert skus_of(served) == [str(model.skus[row]) for row in backwards.rows[:4]] != skus_of(live)


def test_a_widget_passing_a_country_has_the_visitors_lists_scored_for_it(
    client: Client, shop: dict[str, str], commit: Commit, drain: Callable[[], int]
) -> None:
    """The first answer asked with a country notes it (once), the visitor is scored again for
    it, and the next answers with that country are served from their stored list."""
    home(limit=4, exclude_purchased=False)
    visitor = Subject(anonymous_id="de-browser")
    commit(
        lambda: consent_record(subject=visitor, choices={"analytics": True, "personalization": True}, source="banner")
    )
    view = {"type": "track", "event": "Product Viewed", "anonymousId": "de-browser"}
    events = [{**view, "messageId": f"de-view-{sku}", "properties": {"product_id": sku}} for sku in ("G3", "K2")]
    client.post(
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop['secret']}"
    )
    drain()
    assert session_lists_score_changed() == 1
    first = ask(client, shop, placement="home", anonymousId="de-browser", country="de").json()
    assert first["personalized"] and session_lists.countries_read(["a:de-browser"]) == ["DE"]
    assert session_lists_score_changed() == 1  # scored again, for DE
    ask(client, shop, placement="home", anonymousId="de-browser", country="DE")
    assert session_lists_score_changed() == 0  # noted once
    # what is served now is the stored list: the same list backwards is served backwards
    (entry,) = session_lists.lists_read(["a:de-browser"])
    assert entry is not None
    fingerprint = entry[: session_lists.FINGERPRINT_BYTES]
    stored = session_lists.matching([entry], fingerprint)
    model = active_model()
    assert stored is not None and model is not None
    backwards = TopLists(stored.parts, stored.rows[::-1], stored.scores, stored.leading, stored.shares)
    session_lists.lists_write({"a:de-browser": session_lists.entry_of(fingerprint, model.version_id, backwards)})
    served = ask(client, shop, placement="home", anonymousId="de-browser", country="DE").json()
    assert skus_of(served) == [str(model.skus[row]) for row in backwards.rows[:4]] != skus_of(first)
