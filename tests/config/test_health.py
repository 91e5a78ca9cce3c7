import pytest
from django.test import Client

from tests.conftest import run_django


@pytest.mark.embedded
@pytest.mark.django_db
def test_healthz_is_up_with_every_configured_backend(client: Client, settings) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["redis"] == ({"status": "up"} if settings.REDIS_URL else {"status": "not_configured"})
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
