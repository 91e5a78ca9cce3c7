"""``python manage.py train_models``: fit every recommender now, print what each part took and
how each did on the hold-out, and activate the version if it is not worse than the active one."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalization.models import ModelVersion
from personalization.services import model_version_train


class Command(BaseCommand):
    help = "Train every recommender on the stored interactions and record a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--activate",
            choices=["auto", "always", "never"],
            default="auto",
            help="auto (default): serve the new version if it is not worse on the hold-out than the active one.",
        )
        parser.add_argument(
            "--params", type=json.loads, default=None, help='JSON overrides, e.g. \'{"lightfm": {"epochs": 20}}\'.'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = model_version_train(trigger="command", params=options["params"], activation=options["activate"])
        except Exception as exc:
            raise CommandError(f"Training failed: {type(exc).__name__}: {exc}") from exc
        write = self.stdout.write
        counts = version.counts
        write(
            f"Model version {version.pk}: {counts['people']:,} people, {counts['items']:,} items, "
            f"{counts['interactions']:,} interactions ({counts['purchases']:,} purchases, {counts['views']:,} views, "
            f"{counts['adds']:,} adds to cart); left out without personalization consent: "
            f"{counts['people_without_consent']:,} people, {counts['interactions_without_consent']:,} interactions"
        )
        for name, reason in counts.get("skipped", {}).items():
            write(f"  {name} left out: {reason}")
        write("Seconds per part:")
        for part, seconds in version.timings.items():
            write(f"  {part:<32} {seconds:8.2f}")
        write(f"Hold-out (last {version.params['holdout_days']} days, {counts['holdout_people']:,} people), NDCG@10:")
        for name, protocols in version.metrics.items():
            if name != "session":
                new_items, repeat = protocols["new-items"]["ndcg"], protocols["repeat"]["ndcg"]
                write(f"  {name:<18} new-items {new_items:.4f}   repeat {repeat:.4f}")
        session = version.metrics.get("session")
        if session:
            write(
                f"  next basket lines: with the session {session['with_session']['ndcg']:.4f}, "
                f"without {session['without_session']['ndcg']:.4f}"
            )
        status = self.style.SUCCESS if version.status == ModelVersion.Status.ACTIVE else self.style.WARNING
        write(status(f"Version {version.pk} is {version.get_status_display().lower()}."))
