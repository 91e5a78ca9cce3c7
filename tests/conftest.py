"""Shared fixtures. The suite talks to the real PostgreSQL and Redis (see the Makefile); the
tests marked ``embedded`` also run on SQLite with a local-memory cache and eager tasks."""

import gzip
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from tracking.services import SourceKeys, source_create

ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = settings.PZ_DATASETS_DIR / "online_retail" / "online_retail.csv.gz"
# Variables a fresh Django process must not inherit from this one, so each case sets only its own.
CONFIGURATION_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "PZ_DEMO_SHOP",
    "CELERY_TASK_ALWAYS_EAGER",
}


def run_django(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh process whose settings come only from ``variables``: settings are
    read once at start-up, so a configuration can only be tested this way."""
    environment = {k: v for k, v in os.environ.items() if k not in CONFIGURATION_VARIABLES}
    environment.update(variables, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def _unreachable(service: str, where: str, error: Exception, start: str) -> None:
    pytest.exit(
        f"{service} is not reachable at {where} ({error}).\nThe suite needs it running; start it with:\n    {start}",
        returncode=3,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        where = f"{database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}"
        try:
            psycopg.connect(
                host=database.get("HOST") or None,
                port=database.get("PORT") or None,
                user=database.get("USER") or None,
                password=database.get("PASSWORD") or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
        except psycopg.OperationalError as exc:
            _unreachable(
                "PostgreSQL", where, exc, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
    if settings.REDIS_URL:
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            _unreachable(
                "Redis",
                urlsplit(settings.REDIS_URL).netloc,
                exc,
                "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no",
            )


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def source_keys(db: None) -> SourceKeys:
    return source_create(name="Web shop")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def catalog_client(source_keys: SourceKeys) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {source_keys.secret_key}")
    return client


@pytest.fixture(scope="session")
def online_retail_path() -> Path:
    if not ONLINE_RETAIL.is_file():
        pytest.fail(f"The UCI Online Retail file is missing at {ONLINE_RETAIL}; set PZ_DATASETS_DIR.")
    return ONLINE_RETAIL


def write_online_retail(path: Path, rows: list[str]) -> Path:
    """Write rows (CSV lines without the header) as a gzipped Online Retail file."""
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def drain() -> Callable[[], int]:
    """Process what the collector appended to the stream (with Redis), as a consumer would; in the
    embedded configuration the collector already processed it. Returns the events stored now."""

    def run() -> int:
        if not settings.REDIS_URL:
            return 0
        from tracking.consumer import consume_available

        return consume_available(name="test-consumer").stored

    return run


def pytest_report_header(config: pytest.Config) -> str:
    database = settings.DATABASES["default"]
    redis_state = settings.REDIS_URL or "none (local-memory cache, eager tasks)"
    return f"database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}; redis: {redis_state}"
