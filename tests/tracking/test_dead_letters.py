"""The dead-letter stream: what the consumers set aside, inspected, redriven, discarded, counted."""

from io import StringIO
from typing import Any

import msgspec
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tests.tracking.test_stream_consumers import raw_batch, raw_event
from tracking import consumer, dead_letters, stream
from tracking.models import Event, IngestCount
from tracking.services import source_create

pytestmark = pytest.mark.django_db


def poisoned_entry(source_id: int, batch_id: str, message_id: str) -> str:
    """Append an entry of a good event and one that processing cannot store, and consume it."""
    unreadable = raw_event(message_id, "v1", timestamp="2026-01-05 at ten")
    entry = stream.stream_append(raw_batch(source_id, batch_id, [raw_event(f"{batch_id}-good", "v1"), unreadable]))
    assert consumer.consume_available(name="c").dead_lettered == 1
    return entry


def manage(*arguments: str) -> str:
    out = StringIO()
    call_command("dead_letters", *arguments, stdout=out)
    return out.getvalue()


def repaired(letter: dead_letters.DeadLetter) -> dict[str, str | bytes]:
    """The dead letter as an operator's fix leaves it: the event's times are ISO 8601."""
    (event,) = letter.batch["events"]
    fixed = {**event, "timestamp": "2026-01-05T10:00:00+00:00", "originalTimestamp": "2026-01-05T10:00:00Z"}
    batch = {**letter.batch, "events": [fixed]}
    return {"b": msgspec.json.encode(batch), "entry": letter.entry, "index": "1", "error": "-"}


def test_list_and_show_say_which_event_of_which_entry_failed_and_why() -> None:
    source = source_create(name="Web").source
    entry = poisoned_entry(source.pk, "b1", "poison-1")
    (letter,) = dead_letters.dead_letters_list()
    listed = manage("list")
    assert listed.splitlines() == [
        f"{letter.id}  entry {entry} event 1  messageId=poison-1  events=1  {letter.error[:120]}",
        "1 shown of 1 dead letters.",
    ]
    shown = manage("show", letter.id)
    assert f'"entry": "{entry}"' in shown and '"index": 1' in shown and '"id": "b1/1"' in shown
    with pytest.raises(CommandError, match="No dead letter 1-1"):
        manage("show", "1-1")


def test_a_redriven_event_is_stored_once_however_often_it_is_sent_back() -> None:
    source = source_create(name="Web").source
    poisoned_entry(source.pk, "b1", "poison-1")
    (letter,) = dead_letters.dead_letters_list()
    stream.client().xdel(stream.DEAD_LETTERS, letter.id)
    for _ in range(2):
        stream.client().xadd(stream.DEAD_LETTERS, repaired(letter))  # type: ignore[arg-type]
    assert dead_letters.dead_letters_count() == 2  # the same event set aside twice

    assert manage("redrive", "--all") == "2 dead letters sent back to the event stream.\n"
    consumer.consume_available(name="c")

    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["b1-good", "poison-1"]
    assert dead_letters.dead_letters_count() == 0
    assert dict(IngestCount.objects.values_list("outcome", "count")) == {"stored": 2, "bot": 1, "rejected": 2}
    assert manage("redrive", "--all") == "0 dead letters sent back to the event stream.\n"


def test_redrive_and_discard_take_the_dead_letters_named() -> None:
    source = source_create(name="Web").source
    poisoned_entry(source.pk, "b1", "poison-1")
    poisoned_entry(source.pk, "b2", "poison-2")
    poisoned_entry(source.pk, "b3", "poison-3")
    first, second, _ = dead_letters.dead_letters_list()

    assert manage("redrive", first.id) == "1 dead letters sent back to the event stream.\n"
    consumer.consume_available(name="c")  # still poison: set aside again, as a new dead letter
    assert manage("discard", second.id, "9-9") == "1 dead letters discarded.\n"

    assert [letter.message_id for letter in dead_letters.dead_letters_list()] == ["poison-3", "poison-1"]
    assert dead_letters.dead_letters_list()[1].batch["id"] == "b1/1/0"
    with pytest.raises(CommandError, match="Name the dead letters, or give --all"):
        manage("discard")
    assert manage("discard", "--all") == "2 dead letters discarded.\n"
    assert dead_letters.dead_letters_count() == 0
    assert Event.objects.count() == 3  # the good neighbours


def test_the_ingest_counts_page_shows_the_dead_letters(admin_client: Client, settings: Any) -> None:
    source = source_create(name="Web").source
    poisoned_entry(source.pk, "b1", "poison-1")
    page = admin_client.get("/admin/tracking/ingestcount/").content.decode()
    assert "Dead letters: 1 event set aside in <code>pz:events:dead</code>" in page
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    page = admin_client.get("/admin/tracking/ingestcount/").content.decode()
    assert "Dead letters: unknown (Redis does not answer)." in page
