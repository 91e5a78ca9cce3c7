"""Erasure reaches the events in flight: accepted by the collector before an erasure, consumed after
it (or while it runs), they bring nothing of the person back (see ``consent.suppression``)."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.models import SubjectLink, Suppression
from consent.selectors import subject_hash
from consent.services import subject_erase
from consent.subjects import Subject
from personalization.models import Exposure
from tests.consent.test_erasure import redis_naming, rows_naming
from tests.outages import wait_until
from tracking import stream
from tracking.consumer import consume_available
from tracking.models import Customer, Event, IngestCount, Order, Profile
from tracking.services import source_create

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="events are in flight only through the stream")

USER = "in-flight-user-5d21"
ANONYMOUS = "in-flight-anon-0b7e"
EMAIL = "ines.flight@example.com"
NAME = "Ines Flightly"
IDENTIFIERS = (USER, ANONYMOUS, EMAIL, NAME)


def send_identify_and_order(client: Client) -> None:
    """The person browses, signs in (identify, with email and name) and orders: accepted, in the stream.
    The shop's server sends them, with the secret key, which vouches for the user id."""
    keys = source_create(name="In-flight source")
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": ANONYMOUS,
            "messageId": "flight-view",
            "properties": {"product_id": "SKU-1"},
        },
        {
            "type": "identify",
            "anonymousId": ANONYMOUS,
            "userId": USER,
            "messageId": "flight-identify",
            "traits": {"email": EMAIL, "name": NAME, "address": {"country": "PT"}},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": USER,
            "messageId": "flight-order",
            "properties": {
                "order_id": "flight-1",
                "revenue": 12.5,
                "products": [{"product_id": "SKU-1", "price": 12.5}],
            },
        },
    ]
    batch = {
        "batch": events,
        "context": {"consent": {"categoryPreferences": {"analytics": True}}},
    }
    response = client.post(
        "/v1/batch", batch, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}"
    )
    assert response.json()["accepted"] == 3, response.content
    assert stream.backlog() == {"length": 1, "pending": 0}  # one batch, not yet consumed


def assert_nothing_of_the_person() -> None:
    for identifier in IDENTIFIERS:
        assert rows_naming(identifier) == {}, identifier
        assert redis_naming(identifier) == [], identifier
    assert (Event.objects.count(), Customer.objects.count()) == (0, 0)
    assert Order.objects.exclude(customer__isnull=True, anonymous_id="", properties={}).count() == 0  # anonymised
    assert (Profile.objects.count(), SubjectLink.objects.count(), Exposure.objects.count()) == (0, 0, 0)
    assert stream.backlog() == {"length": 0, "pending": 0}


def suppressed_counted() -> int:
    return sum(IngestCount.objects.filter(outcome=IngestCount.Outcome.SUPPRESSED).values_list("count", flat=True))


@pytest.mark.django_db
def test_events_accepted_before_an_erasure_and_consumed_after_it_are_dropped(
    client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    send_identify_and_order(client)
    with django_capture_on_commit_callbacks(execute=True):
        subject_erase(subject=Subject(user_id=USER), requested_via="test")

    stats = consume_available(name="test-consumer")

    assert (stats.entries, stats.stored, stats.duplicates) == (1, 0, 0)
    assert_nothing_of_the_person()
    # the anonymous id's view goes too: the batch's identify ties it to the erased user
    assert suppressed_counted() == 3
    assert Order.objects.count() == 0
    assert IngestCount.objects.filter(outcome=IngestCount.Outcome.STORED).count() == 0


# --- an erasure racing a batch --------------------------------------------------------------------
#
# Each test holds one of the two back at a chosen point with a row of its own that the other must
# wait for (an uncommitted insert on a unique key, in a transaction of its own), and lets it go once
# the other has either finished or is waiting for the erasure lock. Without the lock, the other
# finishes first, and the person comes back.


class Blocker:
    """An uncommitted row, in a thread of its own, until ``release()`` rolls it back."""

    def __init__(self, insert: Callable[[], Any]) -> None:
        self.inserted, self.released = threading.Event(), threading.Event()
        self.pid = 0
        self.thread = threading.Thread(target=self._hold, args=(insert,))
        self.thread.start()
        assert self.inserted.wait(30)

    def _hold(self, insert: Callable[[], Any]) -> None:
        try:
            with transaction.atomic():
                insert()
                self.pid = connection.connection.info.backend_pid
                self.inserted.set()
                self.released.wait(60)
                transaction.set_rollback(True)
        finally:
            connection.close()

    def blocking(self) -> bool:
        """Whether another session waits for this row."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [self.pid])
            return bool(cursor.fetchone()[0])

    def release(self) -> None:
        self.released.set()
        self.thread.join(30)


def in_thread(work: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting_for_the_erasure_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return bool(cursor.fetchone()[0])


@pytest.fixture
def events_in_flight(client: Client) -> None:
    send_identify_and_order(client)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_erasure_while_a_batch_is_being_processed_deletes_what_it_wrote(events_in_flight: None) -> None:
    # The batch has checked suppression and written the profiles; the customer's insert waits.
    blocker = Blocker(lambda: Customer.objects.create(user_id=USER))
    batch = in_thread(lambda: consume_available(name="racing-consumer"))
    wait_until(blocker.blocking)
    erasure = in_thread(lambda: subject_erase(subject=Subject(user_id=USER), requested_via="test"))
    wait_until(lambda: not erasure.is_alive() or waiting_for_the_erasure_lock())

    blocker.release()
    batch.join(30)
    erasure.join(30)

    assert_nothing_of_the_person()
    assert Suppression.objects.filter(subject_hash=subject_hash("anonymous", ANONYMOUS)).exists()
    assert IngestCount.objects.get(outcome=IngestCount.Outcome.STORED).count == 3  # then erased
    assert Order.objects.count() == 1  # kept for the shop's revenue, without anyone's identity


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_processed_while_an_erasure_runs_drops_the_persons_events(events_in_flight: None) -> None:
    # The erasure records the person's suppression: its insert waits.
    blocker = Blocker(lambda: Suppression.objects.create(subject_hash=subject_hash("user", USER)))
    erasure = in_thread(lambda: subject_erase(subject=Subject(user_id=USER), requested_via="test"))
    wait_until(blocker.blocking)
    batch = in_thread(lambda: consume_available(name="racing-consumer"))
    wait_until(lambda: not batch.is_alive() or waiting_for_the_erasure_lock())

    blocker.release()
    erasure.join(30)
    batch.join(30)

    assert_nothing_of_the_person()
    assert suppressed_counted() == 3
    assert Order.objects.count() == 0
