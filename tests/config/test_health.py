from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import run_django
from tests.outages import RedisServer
from tracking import stream


@pytest.mark.embedded
@pytest.mark.django_db
def test_healthz_is_up_with_every_configured_backend(client: Client, settings) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["redis"]["status"] == ("up" if settings.REDIS_URL else "not_configured")
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(client: Client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == {"status": "down", "error": "ConnectionError"}
    assert body["checks"]["database"]["status"] == "up"


def test_healthz_is_503_when_the_database_is_down() -> None:
    result = run_django(
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/healthz'); print(r.status_code); print(json.dumps(r.json()))",
        DATABASE_URL="postgres://postgres@127.0.0.1:1/pz",  # nothing listens on port 1
        ALLOWED_HOSTS="testserver",
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-2:]
    assert status == "503"
    assert '"database": {"status": "down", "error": "OperationalError", "vendor": "postgresql"}' in body
    assert '"redis": {"status": "not_configured"}' in body


def test_healthz_answers_only_get(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthz_shows_a_durable_redis_and_the_dead_letters(client: Client, private_redis: RedisServer) -> None:
    stream.client().xadd(stream.DEAD_LETTERS, {"b": b"{}", "entry": "1-0", "error": "TypeError()"})
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert "warnings" not in body
    assert body["checks"]["redis"] == {
        "status": "up",
        "persistence": {"aof": True, "maxmemory_policy": "noeviction", "durable": True},
        "dead_letters": 1,
    }


@pytest.mark.django_db
def test_healthz_warns_with_200_when_redis_may_lose_accepted_events(client: Client, settings, tmp_path: Path) -> None:
    """200, not 503: a load balancer would take every web worker out for a configuration warning."""
    with RedisServer(tmp_path / "volatile", appendonly=False) as volatile:
        volatile.client().config_set("maxmemory-policy", "allkeys-lru")
        settings.REDIS_URL = volatile.url
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    appendonly = "appendonly is off: a restart of Redis loses every event accepted and not yet stored"
    eviction = "maxmemory-policy is allkeys-lru: Redis may evict the event stream"
    configure = "configure Redis with: appendonly yes, appendfsync everysec, maxmemory-policy noeviction"
    assert body["checks"]["redis"] == {
        "status": "up",
        "persistence": {"aof": False, "maxmemory_policy": "allkeys-lru", "durable": False},
        "dead_letters": 0,
        "warnings": [appendonly, eviction, configure],
    }
    assert body["warnings"] == [f"redis: {appendonly}", f"redis: {eviction}", f"redis: {configure}"]
