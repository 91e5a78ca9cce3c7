"""``python manage.py evaluate``: the offline evaluation of every recommender and three baselines
on the interactions in the database (see ``personalization.recommenders.offline``)."""

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalization.models import TunedParameters
from personalization.recommenders import offline
from personalization.recommenders.evaluation import PROTOCOLS
from personalization.training import COMPONENTS, dataset_build, effective_params

COLUMNS = (("precision", "P@10"), ("recall", "R@10"), ("ndcg", "NDCG@10"), ("map", "MAP@10"), ("coverage", "coverage"))


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M")


class Command(BaseCommand):
    help = (
        "Evaluate every recommender and the baselines (most popular, implicit ALS, LightFM without features) "
        "with a temporal split: tune on the validation window, score the test window once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--test-days", type=float, default=14, help="Length of the test window (default 14).")
        parser.add_argument(
            "--validation-days", type=float, default=14, help="Length of the validation window before it (default 14)."
        )
        parser.add_argument("--trials", type=int, default=10, help="Tuning trials per recommender (0: no tuning).")
        parser.add_argument("--blend-trials", type=int, default=60, help="Tuning trials of the blend's weights.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--save", action="store_true", help="Keep the tuned parameters: every later training uses them."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        params = effective_params()
        dataset = dataset_build(kind_weights=params["kind_weights"])
        if dataset.data.n_users == 0 or len(dataset.data.interactions) == 0:
            raise CommandError("There are no interactions to evaluate on: load data first (see the README).")
        progress = (lambda message: None) if options["json"] else (lambda message: self.stderr.write(message))
        try:
            import implicit  # noqa: F401  (the ALS baseline)
        except ImportError as exc:
            raise CommandError(
                "The implicit ALS baseline needs the evaluation dependencies: pip install -r requirements-dev.txt"
            ) from exc
        report = offline.run(
            dataset.data,
            params,
            components=COMPONENTS,
            trials=options["trials"],
            blend_trials=options["blend_trials"],
            test_days=options["test_days"],
            validation_days=options["validation_days"],
            progress=progress,
        )
        if options["save"]:
            TunedParameters.objects.create(
                params=report.tuned,
                metrics={"validation": report.validation_ndcg, "test": report.test, "session": report.session},
                data_until=datetime.fromtimestamp(report.end, tz=UTC),
            )
        if options["json"]:
            self.stdout.write(json.dumps(report.__dict__, indent=2, sort_keys=True, default=str))
            return
        self._print(report, options["save"])

    def _print(self, report: offline.Report, saved: bool) -> None:
        write = self.stdout.write
        write(
            f"{report.people:,} people, {report.items:,} items, {report.interactions:,} interactions. "
            f"Validation {_day(report.validation_since)} → {_day(report.test_since)}, "
            f"test {_day(report.test_since)} → {_day(report.end)}."
        )
        header = f"{'':<34}" + "".join(f"{label:>10}" for _, label in COLUMNS) + f"{'people':>8}"
        for protocol in PROTOCOLS:
            write("")
            write(f"Protocol {protocol}")
            write(header)
            names = [*offline.BASELINES, *(n for n in report.test if n not in offline.BASELINES)]
            for name in names:
                metrics = report.test[name][protocol]
                label = f"baseline: {offline.LABELS[name]}" if name in offline.BASELINES else name
                cells = "".join(f"{metrics[key]:>10.4f}" for key, _ in COLUMNS)
                write(f"  {label:<32}{cells}{metrics['people']:>8}")
            ours, our_ndcg, baseline, baseline_ndcg = offline.best_against_baselines(report, protocol)
            change = (our_ndcg / baseline_ndcg - 1) * 100 if baseline_ndcg else float("inf")
            write(
                f"  best of ours: {ours} {our_ndcg:.4f}; best baseline: {offline.LABELS[baseline]} "
                f"{baseline_ndcg:.4f}; {change:+.1f}% NDCG@10"
            )
        with_session, without = report.session["with_session"], report.session["without_session"]
        write("")
        write(
            f"Next basket lines ({with_session['people']:,} orders of the test window, the first half of each "
            f"as the session): NDCG@10 {with_session['ndcg']:.4f} with the session, {without['ndcg']:.4f} without "
            f"({(with_session['ndcg'] / without['ndcg'] - 1) * 100 if without['ndcg'] else 0:+.1f}%)."
        )
        write("")
        write("Seconds: " + ", ".join(f"{k} {v}" for k, v in report.seconds.items()))
        write("Tuned blend weights: " + json.dumps(report.tuned["hybrid"]["weights"]))
        if saved:
            write(self.style.SUCCESS("The tuned parameters are saved: the next training uses them."))
