"""The recommendation API and the catalog API while a store is down: the held answer (trending from
the model and catalog snapshot in memory, marked, never cached), or 503 with Retry-After; never a 500."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from personalization.model_store import forget_loaded_model
from personalization.models import Placement, Product
from personalization.serving_views import CachedSourceAuthentication
from tests.conftest import Commit
from tests.outages import RedisServer, TcpProxy, assert_store_unavailable
from tests.personalization.history import build_shop, train
from tracking import stream
from tracking.internal_events import internal_events_flush
from tracking.services import source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def write_key(private_redis: RedisServer, commit: Commit) -> str:
    build_shop(6)
    train(commit)
    Placement.objects.update(latency_budget_ms=10_000)  # a loaded machine must not make it the budget's fallback
    return source_create(name="Web shop").write_key


@pytest.fixture
def widget() -> Client:
    return Client(raise_request_exception=False)


def ask(widget: Client, write_key: str, visitor: str, **params: Any) -> Any:
    query = {"writeKey": write_key, "placement": "home", "anonymousId": visitor, "limit": 4, **params}
    return widget.get("/api/v1/recommendations", query)


def skus(body: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in body["items"]]


def assert_held_answer(response: Any, expected_skus: list[str]) -> None:
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert skus(body) == expected_skus
    assert (body["personalized"], body["campaign"], body["strategy"]) == (False, None, "trending")
    assert body["fallback"] == "outage"
    assert body["note"] == "a store is unavailable: the trending list this server holds"


def appended(server: RedisServer) -> int:
    assert internal_events_flush()
    return int(server.client().xlen(stream.STREAM))


def test_with_postgres_down_the_api_answers_the_held_trending_list(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, widget: Client
) -> None:
    usual = ask(widget, write_key, "visitor-1").json()  # no personalization consent: trending
    before = appended(private_redis)
    known = CachedSourceAuthentication._known
    known.update({key: (0.0, source) for key, (_, source) in known.items()})  # its minute is over
    database_outage.cut()

    # A new visitor: their consent state is in PostgreSQL only.
    response = ask(widget, write_key, "visitor-2")

    assert_held_answer(response, skus(usual))
    assert appended(private_redis) == before  # no exposure logged for an answer the stores had no part in


def test_with_redis_down_the_api_answers_the_held_trending_list(
    private_redis: RedisServer, write_key: str, widget: Client
) -> None:
    usual = ask(widget, write_key, "visitor-1").json()
    kitchen = ask(widget, write_key, "visitor-1", category="Kitchen", limit=5).json()
    private_redis.stop()

    assert_held_answer(ask(widget, write_key, "visitor-1"), skus(usual))
    # The page's context still applies: the product's category, from the catalog snapshot.
    assert_held_answer(ask(widget, write_key, "visitor-3", product="K1"), [s for s in skus(kitchen) if s != "K1"][:4])


def test_with_a_store_down_and_nothing_held_the_api_answers_503(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, widget: Client
) -> None:
    assert ask(widget, write_key, "visitor-1").status_code == 200
    forget_loaded_model()  # a process that has loaded no model yet
    database_outage.cut()
    private_redis.stop()

    response = ask(widget, write_key, "visitor-2")

    assert_store_unavailable(response)


def test_with_postgres_down_a_catalog_write_answers_503_and_stores_nothing(
    database_outage: TcpProxy, catalog_client: APIClient
) -> None:
    catalog_client.raise_request_exception = False
    database_outage.cut()

    response = catalog_client.post(
        "/api/v1/catalog/products/batch",
        {"products": [{"sku": "N1", "name": "New thing", "price": "5.00"}]},
        format="json",
    )

    assert_store_unavailable(response)
    database_outage.restore()
    connection.close()  # the one the outage broke
    assert not Product.objects.filter(sku="N1").exists()
