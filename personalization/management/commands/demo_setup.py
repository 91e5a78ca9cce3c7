"""``python manage.py demo_setup``: what ``make run`` needs before it serves the demo.

Loads the demo slice of UCI Online Retail when the catalog is empty, trains the recommenders when
no model version serves yet, makes sure an admin login and a demo source exist, and prints the
credentials (kept in ``var/demo-credentials.txt``, which is git-ignored and readable only by its
owner). Safe to run any number of times.
"""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalization.models import ModelVersion, Product
from tracking.models import Source
from tracking.services import source_create

DEMO_SOURCE = settings.PZ_DEMO_SOURCE


class Command(BaseCommand):
    help = "Prepare the demo: load the demo data slice if the catalog is empty, create an admin and a source."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", default=settings.PZ_DEMO_SINCE, help="First day of the demo slice.")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the demo is served (for the printed links)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        settings.VAR_DIR.mkdir(exist_ok=True)
        stored = self._read(credentials)

        if not Product.objects.exists():
            path = settings.PZ_DATASETS_DIR / "online_retail" / "online_retail.csv.gz"
            if not path.is_file():
                raise CommandError(f"The demo data is missing: {path}. Set PZ_DATASETS_DIR to the datasets folder.")
            self.stdout.write(f"Loading the demo slice of UCI Online Retail (since {options['since']})…")
            arguments = [str(path), "--since", options["since"]]
            call_command("load_online_retail", *arguments, *(["--no-progress"] if options["no_progress"] else []))

        if not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
            self.stdout.write("Training the recommenders on it (the nightly schedule retrains them)…")
            call_command("train_models", "--activate", "always")

        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", email="", password=password)
            stored["admin password"] = password
        if not Source.objects.filter(name=DEMO_SOURCE).exists():
            keys = source_create(name=DEMO_SOURCE)
            stored["write key"], stored["secret key"] = keys.write_key, keys.secret_key
        self._write(credentials, stored)

        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("The demo is ready."))
        password = stored.get("admin password", "(set before; unchanged)")
        base = options["base_url"].rstrip("/")
        self.stdout.write(f"  Admin:      {base}/admin/  user admin, password {password}")
        self.stdout.write(f"  Shop:       {base}/shop/")
        self.stdout.write(f"  API docs:   {base}/api/docs/")
        self.stdout.write(f"  Source '{DEMO_SOURCE}':")
        self.stdout.write(f"    write key  {stored.get('write key', '?')}  (public: pz.js and Segment SDKs)")
        self.stdout.write(f"    secret key {stored.get('secret key', '?')}  (server-side: the catalog API)")
        self.stdout.write(f"  (kept in {credentials})")

    @staticmethod
    def _read(path: Path) -> dict[str, str]:
        if not path.is_file():
            return {}
        pairs = (line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
        return dict(pairs)

    @staticmethod
    def _write(path: Path, values: dict[str, str]) -> None:
        path.touch(mode=0o600, exist_ok=True)
        path.write_text("".join(f"{key}: {value}\n" for key, value in values.items()))
