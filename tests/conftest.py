"""Shared fixtures. The suite talks to the real PostgreSQL and Redis (see the Makefile); the
tests marked ``embedded`` also run on SQLite with a local-memory cache and eager tasks."""

import gzip
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from tests.outages import RedisServer, TcpProxy
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
    "CONN_MAX_AGE",
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
    if settings.REDIS_URL:  # the exposures this test's answers left to append go with the rest
        from tracking.internal_events import internal_events_flush

        assert internal_events_flush()
    cache.clear()


@pytest.fixture(autouse=True)
def _stores_breaker_closed() -> Iterator[None]:
    """Each test starts with the serving path trying its stores (an outage a test made is its own)."""
    from personalization.serving.outages import stores_breaker

    stores_breaker.reset()
    yield
    stores_breaker.reset()


@pytest.fixture(autouse=True)
def _model_directory(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Each test trains into a folder of its own, and serves from no model it did not train."""
    from personalization.model_store import forget_loaded_model
    from personalization.serving import forget_placements

    settings.PZ_MODEL_DIR = tmp_path / "models"
    settings.PZ_CATALOG_CHANGES_SECONDS = 0.0  # serving sees each change of the catalog at once
    for forget in (forget_loaded_model, forget_placements):
        forget()
    yield settings.PZ_MODEL_DIR
    for forget in (forget_loaded_model, forget_placements):
        forget()


@pytest.fixture
def private_redis(settings: Any, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (with an append-only file) behind the cache, the stream and the
    broker, which the test may stop and restart; never the shared one."""
    with RedisServer(tmp_path / "redis") as server:
        settings.REDIS_URL = server.url
        settings.CELERY_BROKER_URL = server.url
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
        yield server


@pytest.fixture
def database_outage(transactional_db: None) -> Iterator[TcpProxy]:
    """This process's database connection goes through a proxy the test can ``cut()`` (PostgreSQL
    unreachable, as when it is stopped) and ``restore()``; the shared server keeps running."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        pytest.skip("a database outage is simulated on PostgreSQL")
    original = dict(connection.settings_dict)
    proxy = TcpProxy(original.get("HOST") or "127.0.0.1", int(original.get("PORT") or 5432)).start()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        yield proxy
    finally:
        proxy.restore()
        connection.close()
        connection.settings_dict.update(HOST=original.get("HOST"), PORT=original.get("PORT"))
        proxy.close()


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
    """Process what the collector appended to the stream (with Redis), as a consumer would, and the
    exposures this process has yet to append (``tracking.internal_events``); in the embedded
    configuration the collector already processed them. Returns the events stored now."""

    def run() -> int:
        if not settings.REDIS_URL:
            return 0
        from tracking.consumer import consume_available
        from tracking.internal_events import internal_events_flush

        assert internal_events_flush()

        return consume_available(name="test-consumer").stored

    return run


# --- real browsers ----------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NewPage = Callable[..., Page]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, for one test.

    Not for a whole module: while Playwright's sync API runs, Django sees the thread as async and
    keeps its database connections in a separate, context-local slot, which does not hold what
    ``serialized_rollback`` restores; so Playwright starts inside each test, after the restore."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}; the browser tests need it: apt-get install -y chromium "
            "(the Makefile installs it). Playwright's own browser downloads are not used."
        )
    # With Playwright's loop marked as running, Django refuses the test's plain synchronous
    # database calls unless told that they are safe, which they are here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        connections.close_all()  # the connections of the context-local slot, which nothing else closes


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """A page in a fresh browser context (own cookies, localStorage and HTTP cache)."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    return new_page()


# --- committed writes --------------------------------------------------------------------------

T = TypeVar("T")


class Commit(Protocol):
    def __call__(self, write: Callable[[], T]) -> T: ...


@pytest.fixture
def commit(django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks) -> Commit:
    """Run a write and its on-commit callbacks (the cache refresh), as a committed request would."""

    def run(write: Callable[[], T]) -> T:
        with django_capture_on_commit_callbacks(execute=True):
            return write()

    return run


def pytest_report_header(config: pytest.Config) -> str:
    database = settings.DATABASES["default"]
    redis_state = settings.REDIS_URL or "none (local-memory cache, eager tasks)"
    return f"database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}; redis: {redis_state}"
