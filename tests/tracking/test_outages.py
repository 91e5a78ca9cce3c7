"""The collector while a store is down: 503 with Retry-After and nothing appended, never a 500;
and, with PostgreSQL down, it keeps accepting what Redis alone can decide (docs/operating.md)."""

import base64
import json
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from consent.models import Purpose
from consent.services import refresh_policy_cache
from tests.conftest import Commit
from tests.outages import RedisServer, TcpProxy, assert_store_unavailable
from tracking import selectors, stream
from tracking.models import Source
from tracking.services import source_cache_forget, source_create

# The database_outage fixture implies transactional tests: the purposes (a data migration) are
# restored after each.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def write_key() -> str:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])  # allowed unless withdrawn
    refresh_policy_cache()
    return source_create(name="Web shop").write_key


@pytest.fixture
def collector() -> Client:
    return Client(raise_request_exception=False)  # what a server answers, not the test's traceback


def track(collector: Client, write_key: str, anonymous_id: str, kind: str = "track") -> Any:
    key = base64.b64encode(f"{write_key}:".encode()).decode()
    body: dict[str, Any] = {"event": "Signed Up", "anonymousId": anonymous_id, "messageId": f"m-{anonymous_id}"}
    if kind == "batch":
        body = {
            "batch": [
                {**body, "type": "track"},
                {**body, "type": "track", "anonymousId": "never-seen", "messageId": "m-never-seen"},
            ]
        }
    return collector.post(
        f"/v1/{kind}", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Basic {key}"
    )


def pixel(collector: Client, write_key: str, anonymous_id: str) -> Any:
    data = json.dumps({"writeKey": write_key, "event": "Opened", "anonymousId": anonymous_id}).encode()
    return collector.get("/v1/pixel/track", {"data": base64.urlsafe_b64encode(data).decode()})


def forget_source_for_a_minute(write_key: str) -> None:
    """What the collector holds for a minute is gone (the minute passed): only the last-known copy is left."""
    selectors._recent_sources.clear()
    cache.delete(selectors.source_cache_key(write_key))


def test_with_redis_down_the_collector_answers_503_and_appends_nothing(
    private_redis: RedisServer, write_key: str, collector: Client
) -> None:
    assert track(collector, write_key, "visitor-1").status_code == 200
    selectors._recent_sources.clear()  # a process that has not seen the key this minute
    private_redis.stop()

    assert_store_unavailable(track(collector, write_key, "visitor-1"))
    assert_store_unavailable(track(collector, write_key, "visitor-2", kind="batch"))

    private_redis.start()  # with its append-only file: what was appended before is there
    assert private_redis.client().xlen(stream.STREAM) == 1


def test_with_redis_down_the_pixel_answers_its_gif_with_503(
    private_redis: RedisServer, write_key: str, collector: Client
) -> None:
    private_redis.stop()

    response = pixel(collector, write_key, "e-1")

    assert (response.status_code, response["Content-Type"], response["Retry-After"]) == (503, "image/gif", "30")
    assert response["X-Pz-Event"] == "unavailable"
    private_redis.start()
    assert private_redis.client().xlen(stream.STREAM) == 0


def test_with_postgres_down_a_known_key_and_visitor_are_still_accepted_into_the_stream(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, collector: Client
) -> None:
    assert track(collector, write_key, "visitor-1").status_code == 200
    forget_source_for_a_minute(write_key)
    database_outage.cut()

    response = track(collector, write_key, "visitor-1")

    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert private_redis.client().xlen(stream.STREAM) == 2  # the consumer stores it once PostgreSQL is back


def test_with_postgres_down_a_new_visitor_gets_503_and_nothing_is_appended(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, collector: Client
) -> None:
    assert track(collector, write_key, "visitor-1").status_code == 200
    database_outage.cut()

    # Whether a visitor never seen (or not for a week) withdrew consent or was erased is in PostgreSQL.
    assert_store_unavailable(track(collector, write_key, "visitor-2"))
    # One unknown visitor in a batch: none of it is appended, the SDK resends the whole batch.
    assert_store_unavailable(track(collector, write_key, "visitor-1", kind="batch"))

    assert private_redis.client().xlen(stream.STREAM) == 1


def test_with_postgres_down_a_key_without_a_last_known_copy_gets_503(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, collector: Client
) -> None:
    database_outage.cut()

    assert_store_unavailable(track(collector, write_key, "visitor-1"))

    assert private_redis.client().exists(stream.STREAM) == 0


def test_a_key_revoked_in_the_admin_is_not_accepted_on_its_last_known_copy(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, collector: Client, commit: Commit
) -> None:
    assert track(collector, write_key, "visitor-1").status_code == 200
    source = Source.objects.get(write_key=write_key)
    source.is_active = False

    def revoke() -> None:  # what the admin's save does
        source.save()
        source_cache_forget(source=source)

    commit(revoke)
    selectors._recent_sources.clear()
    database_outage.cut()

    assert_store_unavailable(track(collector, write_key, "visitor-1"))

    assert private_redis.client().xlen(stream.STREAM) == 1


def test_with_postgres_down_the_pixel_of_a_new_visitor_answers_503(
    private_redis: RedisServer, database_outage: TcpProxy, write_key: str, collector: Client
) -> None:
    assert track(collector, write_key, "visitor-1").status_code == 200
    database_outage.cut()

    response = pixel(collector, write_key, "e-2")

    assert (response.status_code, response["Content-Type"], response["X-Pz-Event"]) == (503, "image/gif", "unavailable")
    assert private_redis.client().xlen(stream.STREAM) == 1
