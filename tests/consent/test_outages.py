"""The consent API and the preference center while PostgreSQL is down: 503 with Retry-After (JSON
for the API, the HTML page for people), nothing recorded; never a 500."""

import json

import pytest
from django.db import connection
from django.test import Client

from consent.models import ConsentRecord
from consent.services import preference_link_issue
from consent.subjects import Subject
from tests.outages import RedisServer, TcpProxy, assert_store_unavailable
from tracking.services import source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def browser() -> Client:
    return Client(raise_request_exception=False)


def records_after(outage: TcpProxy) -> int:
    outage.restore()
    connection.close()  # the one the outage broke
    return ConsentRecord.objects.count()


def test_with_postgres_down_recording_choices_answers_503_and_records_nothing(
    database_outage: TcpProxy, browser: Client
) -> None:
    body = {"writeKey": source_create(name="Web shop").write_key, "anonymousId": "a-1", "choices": {"analytics": True}}
    database_outage.cut()

    response = browser.post("/api/v1/consent/choices", json.dumps(body), content_type="application/json")

    assert_store_unavailable(response)
    assert records_after(database_outage) == 0


def test_with_redis_down_recording_choices_answers_503_and_records_nothing(
    private_redis: RedisServer, browser: Client
) -> None:
    body = {"writeKey": source_create(name="Web shop").write_key, "anonymousId": "a-1", "choices": {"analytics": True}}
    private_redis.stop()

    response = browser.post("/api/v1/consent/choices", json.dumps(body), content_type="application/json")

    # The cached state is forgotten inside the transaction: without Redis, the record is rolled back
    # rather than stored beside a cached state that still says otherwise.
    assert_store_unavailable(response)
    assert ConsentRecord.objects.count() == 0


def test_with_postgres_down_the_banner_config_answers_503(database_outage: TcpProxy, browser: Client) -> None:
    database_outage.cut()

    response = browser.get("/api/v1/consent/config")

    assert_store_unavailable(response)


def test_with_postgres_down_the_preference_center_answers_the_503_page(
    database_outage: TcpProxy, browser: Client
) -> None:
    url = preference_link_issue(subject=Subject(user_id="user-anna"))[0]
    database_outage.cut()

    response = browser.post(url, {"purpose-analytics": "allow"})

    assert (response.status_code, response["Retry-After"], response["Content-Type"]) == (
        503,
        "30",
        "text/html; charset=utf-8",
    )
    assert "<h1>Temporarily unavailable</h1>" in response.content.decode()
    assert records_after(database_outage) == 0
