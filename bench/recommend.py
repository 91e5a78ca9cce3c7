"""Training time on the full UCI Online Retail, and serving one visitor from the loaded artifacts.

    .venv/bin/python bench/recommend.py [--repeat 3] [--visitors 2000] [--postgres postgres://postgres@127.0.0.1:5432]

1. Loads the whole file into a fresh PostgreSQL database (pz_bench_recommend), once.
2. Training: `manage.py train_models` in a fresh process, ``--repeat`` times; prints the median
   wall time of the process and of each part (from the recorded model version), against the
   baseline of the same run: reading the interactions and consent alone (the floor for any
   training).
3. Serving, in this process, from the memory-mapped artifacts of the active version, for
   ``--visitors`` customers drawn at random: p50 and p99 of
     baseline     the trending list: a precomputed vector, its top 10
     model        the blend's top 10 for one known visitor (history and session): scoring,
                  exclusions and ranking, no database
     entry point  ``recommendations_for_visitor`` as the serving API will call it: consent (cache),
                  live profile and products (database), then the model
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail.csv.gz"
DATABASE = "pz_bench_recommend"
REDIS_URL = "redis://127.0.0.1:6379/11"


def environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PZ_MODEL_DIR": str(ROOT / "var" / "bench-models"),
    }


def timed(args: list[str], database_url: str) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=environment(database_url), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def serving(visitors: int) -> dict[str, list[float]]:
    import numpy as np
    import scipy.sparse as sp

    from consent.selectors import subject_hash
    from consent.subjects import Subject
    from personalization.model_store import active_model
    from personalization.recommendations import Context, recommendations_for_visitor
    from personalization.recommenders.base import Visitors, one_row, top_k
    from tracking.models import Customer

    model = active_model()
    if model is None:
        raise SystemExit("no active model version")
    trending = model.hybrid.components["trending"]
    customers = list(Customer.objects.values_list("user_id", flat=True))
    random.seed(1)
    sample = random.choices(customers, k=visitors)
    empty = sp.csr_matrix((1, model.n_items))
    times: dict[str, list[float]] = {"baseline": [], "model": [], "entry point": []}

    for user_id in sample:
        started = time.perf_counter()
        trending_visitors = Visitors(np.array([-1]), empty, empty, [""])
        top_k(trending.score(trending_visitors)[0], 10)
        times["baseline"].append(time.perf_counter() - started)

        started = time.perf_counter()
        row = model.user_row([subject_hash("user", user_id)])
        history = one_row(model.history, row) if row >= 0 else empty
        session = sp.csr_matrix(history)  # as if they had just viewed what they bought: the costliest case
        top_k(model.hybrid.score(Visitors(np.array([row]), history, session, [""]))[0], 10)
        times["model"].append(time.perf_counter() - started)

        started = time.perf_counter()
        recommendations_for_visitor(Subject(user_id=user_id), Context(), k=10)
        times["entry point"].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="Trainings to time (0: serving only).")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--skip-load", action="store_true", help="Reuse the database of an earlier run.")
    options = parser.parse_args()
    url = f"{options.postgres}/{DATABASE}"
    manage = [sys.executable, "manage.py"]
    if not options.skip_load:
        subprocess.run(
            ["psql", options.postgres + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True
        )
        subprocess.run(["psql", options.postgres + "/postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
        timed([*manage, "migrate", "-v0"], url)
        print(f"loaded in {timed([*manage, 'load_online_retail', str(DATA), '--no-progress'], url):.1f} s", flush=True)

    baseline_code = (
        "import django; django.setup(); from personalization.training import dataset_build; "
        "print(dataset_build().counts)"
    )
    os.environ.update(environment(url))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from personalization.models import ModelVersion

    runs: dict[str, list[float]] = {"baseline: read interactions and consent": [], "train_models": []}
    parts: dict[str, list[float]] = {}
    for round_number in range(options.repeat):
        runs["baseline: read interactions and consent"].append(timed([sys.executable, "-c", baseline_code], url))
        runs["train_models"].append(timed([*manage, "train_models", "--activate", "always"], url))
        latest = ModelVersion.objects.order_by("-id").first()
        for part, seconds in (latest.timings if latest else {}).items():
            parts.setdefault(part, []).append(seconds)
        print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in runs.items()), flush=True)

    if options.repeat:
        baseline = statistics.median(runs["baseline: read interactions and consent"])
        print(f"\n{'training (process wall time)':<44} {'median s':>9} {'× baseline':>11}   runs")
        for name, values in runs.items():
            median = statistics.median(values)
            print(f"{name:<44} {median:>9.1f} {median / baseline:>11.1f}   {', '.join(f'{v:.1f}' for v in values)}")
        print(f"\n{'part of train_models (recorded)':<44} {'median s':>9}")
        for part, values in parts.items():
            print(f"{part:<44} {statistics.median(values):>9.2f}")

    times = serving(options.visitors)
    base_p50, _ = percentiles(times["baseline"])
    print(f"\n{'serving one visitor, top 10':<44} {'p50 ms':>9} {'p99 ms':>9} {'p50 × baseline':>15}")
    for name, samples in times.items():
        p50, p99 = percentiles(samples)
        print(f"{name:<44} {p50 * 1000:>9.3f} {p99 * 1000:>9.3f} {p50 / base_p50:>15.1f}")


if __name__ == "__main__":
    main()
