"""The platform's own events (each answer's exposure) appended to the stream in batches by a thread
of the process (``tracking.internal_events``): stored as if ingested at once, gated on consent the
same way, and kept while the stream cannot be reached."""

import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import msgspec
import pytest
from django.conf import settings
from django.utils import timezone

from consent.services import consent_record
from consent.subjects import Subject
from tests.conftest import ROOT
from tests.outages import RedisServer, wait_until
from tracking import internal_events, stream
from tracking.ingestion import events_ingest
from tracking.internal_events import internal_event_send, internal_events_dropped, internal_events_flush

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL, reason="without the stream each event is ingested at once"),
]

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
META = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": CHROME}


def exposure(message_id: str, anonymous_id: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Recommendations Served",
        "messageId": message_id,
        "anonymousId": anonymous_id,
        "properties": {"rec_id": message_id, "placement": "home", "products": [{"product_id": "K1", "position": 1}]},
        "context": {"pz": {"internal": "exposure"}},
    }


def stored() -> list[dict[str, Any]]:
    entries: Any = stream.client().xrange(stream.STREAM)
    return [event for _, fields in entries for event in msgspec.json.decode(fields[b"b"])["events"]]


@pytest.fixture
def watched(commit: Any) -> Subject:
    stream.client().delete(stream.STREAM)
    subject = Subject(anonymous_id="watched")
    commit(lambda: consent_record(subject=subject, choices={"analytics": True}, source="banner"))
    return subject


def test_an_event_sent_later_is_stored_as_one_ingested_at_once(watched: Subject) -> None:
    events_ingest(
        source_id=1,
        raw_events=[exposure("m1", "watched")],
        meta=META,
        received_at=timezone.now(),
        internal=True,
        user_ids_trusted=True,
    )
    before = timezone.now()
    internal_event_send(source_id=1, event=exposure("m2", "watched"), meta=META)
    internal_event_send(source_id=1, event=exposure("m3", "unconsented"), meta=META)  # no analytics consent
    after = timezone.now()
    assert internal_events_flush()
    at_once, later = stored()
    assert (at_once["messageId"], later["messageId"]) == ("m1", "m2")
    # the time of the answer, not of the append
    assert before <= datetime.fromisoformat(later["timestamp"]) <= after
    assert later["originalTimestamp"] == later["timestamp"]
    assert later["context"].pop("userAgent") == CHROME  # the request's, carried by the event
    assert later["context"] == at_once["context"]  # the same truncated address, agent and marker
    assert later["context"]["ip"] == "203.0.113.0" and later["context"]["pz"]["internal"] == "exposure"
    differing = {"messageId", "properties", "receivedAt", "timestamp", "originalTimestamp"}
    assert {k: v for k, v in later.items() if k not in differing} == {
        k: v for k, v in at_once.items() if k not in differing
    }


def test_the_thread_appends_what_waits_without_being_asked(watched: Subject) -> None:
    internal_event_send(source_id=1, event=exposure("m1", "watched"), meta=META)
    deadline = time.monotonic() + 10
    while not stored() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [event["messageId"] for event in stored()] == ["m1"]


def test_events_wait_while_the_stream_is_unreachable_and_the_oldest_go_past_the_limit(
    watched: Subject, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert internal_events_flush()
    reachable = settings.REDIS_URL
    monkeypatch.setattr(internal_events, "MAX_WAITING", 3)
    dropped = internal_events_dropped()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    internal_events._buffer.flushing.acquire()  # the thread waits while the events are sent
    try:
        for n in range(1, 5):
            internal_event_send(source_id=1, event=exposure(f"m{n}", "watched"), meta=META)
    finally:
        internal_events._buffer.flushing.release()
    assert not internal_events_flush()
    assert internal_events_dropped() == dropped + 1  # m1, the oldest
    settings.REDIS_URL = reachable
    assert internal_events_flush()
    assert [event["messageId"] for event in stored()] == ["m2", "m3", "m4"]


def test_a_server_worker_that_stops_appends_what_waits(watched: Subject) -> None:
    """granian's workers are multiprocessing processes, which leave through ``os._exit``: atexit
    never runs there, so the buffer is flushed by multiprocessing's own finalizers."""
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    script = (
        "import django, multiprocessing; django.setup()\n"
        "from tracking.internal_events import internal_event_send\n"
        "def worker():\n"
        "    for n in range(3):\n"
        "        event = {'type': 'track', 'event': 'Recommendations Served', 'messageId': f'w{n}',\n"
        "                 'anonymousId': 'stranger', 'context': {'pz': {'internal': 'exposure'}}}\n"
        f"        internal_event_send(source_id=1, event=event, meta={META!r})\n"
        "process = multiprocessing.get_context('fork').Process(target=worker)\n"
        "process.start(); process.join()\n"
        "raise SystemExit(process.exitcode)\n"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,
        "PZ_INTERNAL_EVENTS_FLUSH_MS": "600000",  # nothing appended by the thread's period
    }
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, check=True, timeout=120)
    entries: Any = stream.client().xrange(stream.STREAM)
    batches = [msgspec.json.decode(fields[b"b"]) for _, fields in entries]
    # the stranger gave no analytics consent: the three are counted as dropped, as at once
    assert [(batch["events"], batch["dropped"]) for batch in batches] == [([], {"no_consent": 3})]


def test_the_thread_keeps_what_waits_through_a_redis_restart_and_says_so_once(
    private_redis: RedisServer, commit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    commit(
        lambda: consent_record(subject=Subject(anonymous_id="watched"), choices={"analytics": True}, source="banner")
    )
    internal_event_send(source_id=1, event=exposure("m1", "watched"), meta=META)
    wait_until(lambda: len(stored()) == 1)
    with caplog.at_level(logging.WARNING, logger="tracking.internal_events"):
        private_redis.stop()
        for n in range(2, 5):  # answered while Redis is down
            internal_event_send(source_id=1, event=exposure(f"m{n}", "watched"), meta=META)
        internal_events._buffer.wake.set()
        wait_until(lambda: "a store is unreachable" in caplog.text)
        private_redis.start()  # from its append-only file
        wait_until(lambda: len(stored()) == 4, timeout=30)
        wait_until(lambda: "answer again" in caplog.text)
    assert [event["messageId"] for event in stored()] == ["m1", "m2", "m3", "m4"]
    messages = [record.getMessage() for record in caplog.records]  # one as it starts, one as it ends
    assert len(messages) == 2, messages
    assert messages[0].startswith("The platform's own events: a store is unreachable (ConnectionError: ")
    assert messages[1].startswith("The platform's own events: the stores answer again after ")
