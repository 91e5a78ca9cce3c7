"""Settings come from the environment. Each case runs Django in a fresh process with only the
variables it names, because settings are read once at start-up."""

import json

import pytest

from tests.conftest import ROOT, run_django

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
from config import celery_app
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": settings.DATABASES["default"]["NAME"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "broker": celery_app.conf.broker_url,
    "eager": celery_app.conf.task_always_eager,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "csrf_trusted_origins": settings.CSRF_TRUSTED_ORIGINS,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "secret_key": settings.SECRET_KEY,
}))
"""
PRODUCTION_SECRET = "x7Hq2-production-secret-for-tests-only-9fK3mPz8LwR4tY6uV1bN0cX5aS2dF7gH"


def settings_with(**variables: str) -> dict[str, object]:
    result = run_django(PRINT_SETTINGS, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_variables_give_the_laptop_defaults() -> None:
    values = settings_with()
    assert values["debug"] is True
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(ROOT / "var" / "db.sqlite3")
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["broker"] == "memory://"
    assert values["eager"] is True
    assert values["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert values["ssl_redirect"] is False


def test_database_and_redis_urls_switch_to_postgres_redis_and_a_real_broker() -> None:
    values = settings_with(
        DATABASE_URL="postgres://shop:pw@db.internal:6543/pz", REDIS_URL="redis://cache.internal:6380/2"
    )
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "pz"
    assert values["cache"] == "config.cache.RedisCache"
    assert values["cache_location"] == "redis://cache.internal:6380/2"
    assert values["broker"] == "redis://cache.internal:6380/2"
    assert values["eager"] is False


def test_production_variables_are_read() -> None:
    values = settings_with(
        DEBUG="0",
        SECRET_KEY=PRODUCTION_SECRET,
        ALLOWED_HOSTS="shop.example.com,api.example.com",
        CSRF_TRUSTED_ORIGINS="https://shop.example.com",
    )
    assert values["debug"] is False
    assert values["secret_key"] == PRODUCTION_SECRET
    assert values["allowed_hosts"] == ["shop.example.com", "api.example.com"]
    assert values["csrf_trusted_origins"] == ["https://shop.example.com"]
    assert values["ssl_redirect"] is True


def test_debug_off_without_secret_key_stops_with_a_clear_message() -> None:
    result = run_django(PRINT_SETTINGS, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("debug", ["1", "true", "yes"])
def test_debug_on_runs_without_a_secret_key(debug: str) -> None:
    values = settings_with(DEBUG=debug)
    assert values["debug"] is True
    assert str(values["secret_key"]).startswith("django-insecure-")


def test_check_deploy_is_clean_for_a_production_configuration() -> None:
    result = run_django(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        DEBUG="0",
        SECRET_KEY=PRODUCTION_SECRET,
        ALLOWED_HOSTS="shop.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        REDIS_URL="redis://127.0.0.1:6379/1",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
