"""``python manage.py create_source NAME``: create a source and print its two keys."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracking.models import Source
from tracking.services import source_create


class Command(BaseCommand):
    help = "Create a source (a web shop, an app, a shop's server) and print its write key and secret key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A name for the source, e.g. 'Web shop'.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("The name cannot be empty.")
        if Source.objects.filter(name=name).exists():
            raise CommandError(f"A source named {name!r} exists already.")
        keys = source_create(name=name)
        self.stdout.write(f"Source:     {keys.source.name}")
        self.stdout.write(f"Write key:  {keys.write_key}   (public: pz.js and Segment SDKs; can only send events)")
        self.stdout.write(f"Secret key: {keys.secret_key}   (server-side only; shown once, store it now)")
