"""How long `load_online_retail` takes, against a baseline measured in the same run.

    .venv/bin/python bench/load_online_retail.py [--repeat 3] [--postgres postgres://postgres@127.0.0.1:5432]

Each case runs in a fresh process on a freshly migrated database, as an operator would run it:
  baseline        read the CSV and apply the loader's rules, store nothing (the floor for any loader)
  pg-full         the whole file into an empty PostgreSQL database
  pg-again        the whole file a second time (idempotent: must change nothing)
  sqlite-demo     the demo slice (--since PZ_DEMO_SINCE) into an empty SQLite file, as `make run` does
  sqlite-full     the whole file into an empty SQLite file
Prints the median wall time of each case and its ratio to the baseline's median.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail.csv.gz"
DEMO_SINCE = os.environ.get("PZ_DEMO_SINCE", "2011-09-01")
BASELINE = (
    "import sys; from pathlib import Path; from personalization.online_retail import read_online_retail; "
    "data = read_online_retail(Path(sys.argv[1])); print(len(data.invoices))"
)


def run(args: list[str], database_url: str) -> float:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=environment, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def fresh_postgres(server: str) -> str:
    subprocess.run(["psql", server + "/postgres", "-qc", "DROP DATABASE IF EXISTS pz_bench"], check=True)
    subprocess.run(["psql", server + "/postgres", "-qc", "CREATE DATABASE pz_bench"], check=True)
    url = server + "/pz_bench"
    run(manage("migrate", "-v0"), url)
    return url


def fresh_sqlite(folder: Path, name: str) -> str:
    path = folder / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    run(manage("migrate", "-v0"), url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    options = parser.parse_args()
    load = manage("load_online_retail", str(DATA), "--no-progress")
    times: dict[str, list[float]] = {
        name: [] for name in ["baseline", "pg-full", "pg-again", "sqlite-demo", "sqlite-full"]
    }
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(options.repeat):
            times["baseline"].append(run([sys.executable, "-c", BASELINE, str(DATA)], "sqlite:///:memory:"))
            url = fresh_postgres(options.postgres)
            times["pg-full"].append(run(load, url))
            times["pg-again"].append(run(load, url))
            times["sqlite-demo"].append(run([*load, "--since", DEMO_SINCE], fresh_sqlite(Path(folder), "demo")))
            times["sqlite-full"].append(run(load, fresh_sqlite(Path(folder), "full")))
            print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)
    subprocess.run(["psql", options.postgres + "/postgres", "-qc", "DROP DATABASE IF EXISTS pz_bench"], check=True)

    baseline = statistics.median(times["baseline"])
    print(f"\n{'case':<12} {'median s':>9} {'× baseline':>11}   runs")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<12} {median:>9.1f} {median / baseline:>11.1f}   {', '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
