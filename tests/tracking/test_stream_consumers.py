"""Consumers as separate processes on PostgreSQL + Redis: nothing lost, nothing counted twice.

Runs in `make pytest` (not in the embedded run: there is no stream without Redis).
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from consent.models import Purpose
from consent.services import refresh_policy_cache
from tracking import consumer, stream
from tracking.ingestion import events_ingest
from tracking.models import Event, IngestCount, Profile
from tracking.services import source_create

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def needs_postgres_and_redis() -> None:
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.fail("These tests need PostgreSQL and Redis: run them with `make pytest`.")
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()


class Consumers:
    """Start, kill and wait for `manage.py consume_events` processes against the test database."""

    def __init__(self) -> None:
        database = connection.settings_dict
        self.environment = {
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "1",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, fault: str = "") -> subprocess.Popen[bytes]:
        command = [sys.executable, "manage.py", "consume_events", "--name", name, "--claim-idle-ms", "1500"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.environment, "PZ_CONSUMER_FAULT": fault},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.processes.append(process)
        return process

    def wait_until_drained(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stream.backlog() == {"length": 0, "pending": 0}:
                return
            time.sleep(0.1)
        raise AssertionError(f"The stream was not drained in {timeout} s: {stream.backlog()}")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def consumers() -> Iterator[Consumers]:
    running = Consumers()
    yield running
    running.stop_all()


def views(visitor: str, count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": visitor,
            "messageId": f"{prefix}-{visitor}-{n}",
            "properties": {"product_id": f"SKU{n % 7}"},
        }
        for n in range(count)
    ]


def append(source_id: int, events: list[dict[str, Any]], batch_size: int = 250) -> None:
    for start in range(0, len(events), batch_size):
        result = events_ingest(
            source_id=source_id,
            raw_events=events[start : start + batch_size],
            meta={},
            received_at=timezone.now(),
            user_ids_trusted=True,
        )
        assert result.rejected == []


def test_duplicates_across_batches_and_consumers_are_stored_once(consumers: Consumers) -> None:
    source = source_create(name="Web").source
    events = views("v1", 300, "d") + views("v2", 200, "d")
    append(source.pk, events)
    append(source.pk, events[:250])  # resent by a retrying client
    append(source.pk, events[100:400], batch_size=60)
    consumers.start("consumer-a")
    consumers.start("consumer-b")
    consumers.wait_until_drained()
    assert Event.objects.count() == 500
    assert dict(Profile.objects.values_list("key", "product_views")) == {"a:v1": 300, "a:v2": 200}
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 500, "duplicate": 550}


@pytest.mark.parametrize("fault", ["before_commit", "after_commit"])
def test_a_consumer_killed_at_the_worst_moment_loses_and_doubles_nothing(consumers: Consumers, fault: str) -> None:
    source = source_create(name="Web").source
    append(source.pk, views("v1", 400, "k"))
    crashing = consumers.start("consumer-a", fault=fault)
    assert crashing.wait(timeout=60) == -signal.SIGKILL  # killed by itself at the fault point
    assert stream.backlog()["pending"] > 0
    expected_stored_before_restart = 0 if fault == "before_commit" else Event.objects.count()
    assert Event.objects.count() == expected_stored_before_restart
    if fault == "after_commit":
        assert expected_stored_before_restart > 0
    consumers.start("consumer-a")  # the same name resumes its own pending entries
    consumers.wait_until_drained()
    assert Event.objects.count() == 400
    assert Profile.objects.get(key="a:v1").product_views == 400
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 400}  # nothing counted twice


def test_another_consumer_claims_what_a_dead_one_left(consumers: Consumers) -> None:
    source = source_create(name="Web").source
    append(source.pk, views("v1", 200, "c"))
    assert consumers.start("consumer-a", fault="before_commit").wait(timeout=60) == -signal.SIGKILL
    consumers.start("consumer-b")  # a different name: it claims the idle pending entries
    consumers.wait_until_drained()
    assert Event.objects.count() == 200
    assert Profile.objects.get(key="a:v1").product_views == 200


def test_random_kills_under_load_leave_exact_counts(consumers: Consumers) -> None:
    source = source_create(name="Web").source
    visitors = {f"v{n}": 400 + 37 * n for n in range(10)}
    events = [event for visitor, count in visitors.items() for event in views(visitor, count, "r")]
    random.Random(7).shuffle(events)
    append(source.pk, events)
    append(source.pk, events[:3000])  # and some resent
    rng = random.Random(11)
    for round_number in range(4):
        process = consumers.start(f"consumer-{round_number % 2}")
        time.sleep(rng.uniform(0.8, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    consumers.start("consumer-0")
    consumers.start("consumer-1")
    consumers.wait_until_drained(timeout=300)
    assert Event.objects.count() == len(events)
    assert dict(Profile.objects.values_list("key", "product_views")) == {f"a:{v}": n for v, n in visitors.items()}
    counted = dict(IngestCount.objects.values_list("outcome", "count"))
    assert counted == {"stored": len(events), "duplicate": 3000}


def test_a_consumer_lingers_for_more_entries_before_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --linger-ms, what arrives while the consumer waits goes into the same transaction."""

    source = source_create(name="Web").source
    append(source.pk, views("v1", 1, "early"))
    waits: list[float] = []

    def arrive_while_waiting(seconds: float) -> None:  # two more requests come in meanwhile
        waits.append(seconds)
        append(source.pk, views("v2", 1, "late") + views("v3", 1, "late"), batch_size=1)

    monkeypatch.setattr(consumer.time, "sleep", arrive_while_waiting)
    stats = consumer.ConsumerStats()
    rounds = iter(range(50))  # without lingering nothing more arrives: stop anyway
    consumer.consume(
        name="lingering",
        count=10,
        block_ms=10,
        linger_ms=20,
        stop=lambda: stats.entries >= 3 or next(rounds, None) is None,
        stats=stats,
    )
    assert (stats.entries, stats.stored, stats.transactions) == (3, 3, 1)
    assert waits == [0.02]
