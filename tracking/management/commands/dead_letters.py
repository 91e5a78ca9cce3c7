"""``python manage.py dead_letters``: look at the events the consumers set aside, send them back
to the event stream once their cause is fixed, or discard them (see tracking.dead_letters)."""

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracking.dead_letters import (
    DeadLetter,
    dead_letter_get,
    dead_letters_count,
    dead_letters_discard,
    dead_letters_list,
    dead_letters_redrive,
)


class Command(BaseCommand):
    help = "List, show, redrive (back into the event stream) or discard the events in pz:events:dead."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="The oldest dead letters, one a line.")
        listing.add_argument("--count", type=int, default=100)
        actions.add_parser("show", help="One dead letter in full, as JSON.").add_argument("id")
        for name, what in (("redrive", "Send back to the event stream"), ("discard", "Delete for good")):
            action = actions.add_parser(name, help=f"{what}: the dead letters named, or --all.")
            action.add_argument("ids", nargs="*", metavar="id")
            action.add_argument("--all", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: without the stream there are no dead letters.")
        action = options["action"]
        if action == "list":
            letters = dead_letters_list(count=options["count"])
            for letter in letters:
                self.stdout.write(_line(letter))
            self.stdout.write(f"{len(letters)} shown of {dead_letters_count()} dead letters.")
        elif action == "show":
            found = dead_letter_get(options["id"])
            if found is None:
                raise CommandError(f"No dead letter {options['id']}.")
            self.stdout.write(json.dumps(found.__dict__, indent=2, default=str))
        else:
            if bool(options["ids"]) == options["all"]:
                raise CommandError("Name the dead letters, or give --all.")
            ids = None if options["all"] else options["ids"]
            done = dead_letters_redrive(letter_ids=ids) if action == "redrive" else dead_letters_discard(letter_ids=ids)
            verb = "sent back to the event stream" if action == "redrive" else "discarded"
            self.stdout.write(f"{done} dead letters {verb}.")


def _line(letter: DeadLetter) -> str:
    where = f"entry {letter.entry}" + (f" event {letter.index}" if letter.index is not None else " (whole)")
    events = len(letter.batch.get("events") or [])
    return f"{letter.id}  {where}  messageId={letter.message_id or '-'}  events={events}  {letter.error[:120]}"
