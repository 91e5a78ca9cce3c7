"""A Redis that may lose accepted events: production consumers refuse it, every process says so."""

import logging
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from config.redis_persistence import redis_persistence_log
from tests.outages import RedisServer
from tracking import stream
from tracking.models import Event

# Transactional, and restoring the data migrations' rows after each test as the suite's others do.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def volatile_redis(settings: Any, tmp_path: Path) -> Any:
    with RedisServer(tmp_path / "volatile", appendonly=False) as server:
        settings.REDIS_URL = server.url
        yield server


def test_a_production_consumer_refuses_a_redis_without_an_append_only_file(
    settings: Any, volatile_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError) as refused:
        call_command("consume_events", "--exit-when-idle", stdout=StringIO())
    assert "appendonly is off" in str(refused.value)
    assert "appendonly yes, appendfsync everysec, maxmemory-policy noeviction" in str(refused.value)
    assert "PZ_REDIS_VOLATILE_OK=1" in str(refused.value)
    assert not volatile_redis.client().exists(stream.STREAM)  # it never joined the stream


def test_a_production_consumer_refuses_a_redis_that_evicts_any_key(settings: Any, private_redis: RedisServer) -> None:
    settings.DEBUG = False
    private_redis.client().config_set("maxmemory-policy", "allkeys-lfu")
    with pytest.raises(CommandError, match="maxmemory-policy is allkeys-lfu: Redis may evict the event stream"):
        call_command("consume_events", "--exit-when-idle", stdout=StringIO())


def test_the_operator_may_accept_a_volatile_redis_and_the_consumer_says_so(
    settings: Any, volatile_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    settings.PZ_REDIS_VOLATILE_OK = True
    with caplog.at_level(logging.ERROR, logger="config.redis_persistence"):
        call_command("consume_events", "--exit-when-idle", stdout=StringIO())
    (record,) = caplog.records
    assert record.getMessage().startswith("Consumer ")
    assert "may lose accepted events (appendonly is off" in record.getMessage()
    assert volatile_redis.client().exists(stream.STREAM)  # it ran: its group is there
    assert Event.objects.count() == 0


def test_a_durable_redis_starts_the_consumer_without_a_word(
    settings: Any, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    with caplog.at_level(logging.ERROR, logger="config.redis_persistence"):
        call_command("consume_events", "--exit-when-idle", stdout=StringIO())
    assert caplog.records == []


def test_web_and_celery_workers_log_it_at_start_and_start_all_the_same(
    settings: Any, volatile_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    with caplog.at_level(logging.ERROR, logger="config.redis_persistence"):
        redis_persistence_log(process="web worker")
        settings.REDIS_URL = "redis://127.0.0.1:1/0"  # not answering: left to the requests
        redis_persistence_log(process="web worker")
    (record,) = caplog.records
    assert record.getMessage().startswith("web worker: Redis at 127.0.0.1 may lose accepted events (appendonly is off")
