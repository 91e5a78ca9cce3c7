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
from tests.outages import RedisServer, TcpProxy, wait_until
from tracking import consumer, dead_letters, stream
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

    def start(
        self, name: str, fault: str = "", *, log: Path | None = None, **environment: str
    ) -> subprocess.Popen[bytes]:
        """``log``: a file for its log (else a pipe); ``environment``: variables to override."""
        command = [sys.executable, "manage.py", "consume_events", "--name", name, "--claim-idle-ms", "1500"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.environment, "PZ_CONSUMER_FAULT": fault, **environment},
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb") if log else subprocess.PIPE,
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


# --- failures: a poison event set aside alone, outages waited out ---------------------------------


def raw_event(message_id: str, visitor: str, timestamp: str = "2026-01-05T10:00:00+00:00") -> dict[str, Any]:
    """An event as the collector leaves it in the stream (see tracking.ingestion._normalized)."""
    return {
        "messageId": message_id,
        "type": "track",
        "event": "Product Viewed",
        "name": "",
        "userId": "",
        "anonymousId": visitor,
        "groupId": "",
        "previousId": "",
        "timestamp": timestamp,
        "receivedAt": "2026-01-05T10:00:01+00:00",
        "sentAt": None,
        "originalTimestamp": timestamp,
        "properties": {"product_id": "SKU1"},
        "traits": {},
        "context": {},
    }


def raw_batch(source_id: int, batch_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": batch_id,
        "source": source_id,
        "received_at": "2026-01-05T10:00:01+00:00",
        "events": events,
        "dropped": {"bot": 1},
        "rejected": 2,
    }


POISONS: dict[str, tuple[dict[str, Any], str]] = {
    # a time that is no time (the collector refuses it): Python fails reading it, before any SQL
    "unreadable time": ({"timestamp": "yesterday"}, "Invalid isoformat string"),
    # PostgreSQL refuses a NUL in jsonb: the transaction fails inside the database
    "NUL character": ({"properties": {"product_id": "SKU1", "note": "a\u0000b"}}, "\\u0000"),
}


@pytest.mark.parametrize("poison", list(POISONS))
def test_only_the_poison_event_is_set_aside_and_its_neighbours_are_stored(poison: str) -> None:
    source = source_create(name="Web").source
    change, error = POISONS[poison]
    poison_event = {**raw_event("poison-1", "v1"), **change}
    poisoned = stream.stream_append(
        raw_batch(source.pk, "batch-p", [raw_event("good-1", "v1"), poison_event, raw_event("good-2", "v2")])
    )
    stream.stream_append(raw_batch(source.pk, "batch-n", [raw_event("next-1", "v3")]))  # a neighbouring entry

    stats = consumer.consume_available(name="c")

    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["good-1", "good-2", "next-1"]
    assert dict(Profile.objects.values_list("key", "product_views")) == {"a:v1": 1, "a:v2": 1, "a:v3": 1}
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 3, "bot": 2, "rejected": 4}
    (letter,) = dead_letters.dead_letters_list()
    assert (letter.entry, letter.index, letter.message_id) == (poisoned, 1, "poison-1")
    assert error in letter.error
    assert letter.batch == {**raw_batch(source.pk, "batch-p/1", [poison_event]), "dropped": {}, "rejected": 0}
    assert (stats.dead_lettered, stats.stored) == (1, 3)
    assert stream.backlog() == {"length": 0, "pending": 0}


def test_a_poison_entry_processed_again_after_a_crash_is_stored_and_set_aside_once() -> None:
    source = source_create(name="Web").source
    poison_event = raw_event("poison-1", "v1", timestamp="yesterday")
    entry = stream.stream_append(raw_batch(source.pk, "batch-p", [raw_event("good-1", "v1"), poison_event]))
    stream.ensure_group()
    ((entry_id, batch),) = stream.read_new("c", count=10, block_ms=None)
    # Killed after the dead letter was written and before the commit: nothing stored, one dead letter.
    dead_letters.entry_set_aside(entry_id=entry_id, batch=batch, poison=[(1, poison_event, ValueError("yesterday"))])

    consumer.consume_available(name="c")  # the same name resumes the pending entry

    assert list(Event.objects.values_list("message_id", flat=True)) == ["good-1"]
    assert [(letter.entry, letter.index) for letter in dead_letters.dead_letters_list()] == [(entry, 1)]
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 1, "bot": 1, "rejected": 2}


def outage_lines(log: Path) -> tuple[int, int]:
    """How many outages the consumer's log says started, and ended."""
    text = log.read_text()
    return text.count("a store is unreachable"), text.count("the stores answer again")


def test_a_consumer_rides_out_a_redis_restart(consumers: Consumers, private_redis: RedisServer, tmp_path: Path) -> None:
    source = source_create(name="Web").source
    append(source.pk, views("v1", 150, "before"), batch_size=50)
    log = tmp_path / "consumer.log"
    process = consumers.start("consumer-a", log=log, REDIS_URL=private_redis.url)
    consumers.wait_until_drained()
    private_redis.restart()  # with its append-only file: the stream and the group are still there
    append(source.pk, views("v1", 150, "after"), batch_size=50)
    consumers.wait_until_drained()
    assert process.poll() is None  # still running
    assert Event.objects.count() == 300
    assert Profile.objects.get(key="a:v1").product_views == 300
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 300}
    assert dead_letters.dead_letters_count() == 0
    assert outage_lines(log) == (1, 1)


def test_a_consumer_recreates_its_group_after_a_redis_restart_without_data(
    consumers: Consumers, settings: Any, tmp_path: Path
) -> None:
    with RedisServer(tmp_path / "volatile", appendonly=False) as volatile:
        settings.REDIS_URL = volatile.url
        source = source_create(name="Web").source
        process = consumers.start("consumer-a", REDIS_URL=volatile.url)
        append(source.pk, views("v1", 10, "before"))
        consumers.wait_until_drained()
        volatile.restart()  # the stream and its consumer group are gone
        append(source.pk, views("v1", 20, "after"))
        consumers.wait_until_drained()
        assert process.poll() is None
        assert Event.objects.count() == 30


def most_deliveries() -> int:
    """The most times a pending entry of the stream was delivered."""
    pending: Any = stream.client().xpending_range(stream.STREAM, stream.GROUP, min="-", max="+", count=1000)
    return max((int(entry["times_delivered"]) for entry in pending), default=0)


def test_a_consumer_rides_out_a_database_outage(consumers: Consumers, tmp_path: Path) -> None:
    """Entries read while PostgreSQL is unreachable wait for it: none is dead-lettered, none is
    stored twice, and the log says once that the outage began and once that it ended."""
    source = source_create(name="Web").source
    database = connection.settings_dict
    proxy = TcpProxy(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)).start()
    through_proxy = f"postgres://{database['USER']}@127.0.0.1:{proxy.port}/{database['NAME']}"
    log = tmp_path / "consumer.log"
    try:
        process = consumers.start("consumer-a", log=log, DATABASE_URL=through_proxy)
        append(source.pk, views("v1", 100, "before"), batch_size=25)
        consumers.wait_until_drained()
        proxy.cut()
        append(source.pk, views("v1", 200, "during"), batch_size=25)
        append(source.pk, views("v1", 50, "during"), batch_size=25)  # resent while it is down
        # Past the number of tries that once dead-lettered an entry (or until one is dead-lettered).
        wait_until(lambda: most_deliveries() > 5 or dead_letters.dead_letters_count(), timeout=60)
        proxy.restore()
        consumers.wait_until_drained()
    finally:
        proxy.close()
    assert process.poll() is None
    assert Event.objects.count() == 300
    assert Profile.objects.get(key="a:v1").product_views == 300
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 300, "duplicate": 50}
    assert dead_letters.dead_letters_count() == 0
    assert outage_lines(log) == (1, 1)
