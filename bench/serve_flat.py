"""One case of bench/serve.py flat out, with the CPU each request cost each process: for comparing
two checkouts in alternation, where a whole bench/serve.py run is too noisy.

    .venv/bin/python bench/serve_flat.py returning|session|anonymous|floor|bare [--duration 15]

Uses the database and models of an earlier `bench/serve.py` run (it never loads them). It serves
the checkout it is run from: run it from a `git worktree` of another commit, with `.venv` and
`var` linked to this one's, to measure that commit. No `score_sessions` or consumer runs beside
the server (for `session`, one scores the customers' views first, then stops). It asks every
path of the case once untimed, then runs wrk flat out (16 connections), and prints the requests
per second and, from /proc, the CPU per request of the busiest processes.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load, serve  # noqa: E402 (the project on the path first)


def cpu_ticks() -> dict[tuple[str, str], int]:
    """User and system clock ticks of every process, by (pid, name)."""
    ticks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[(pid, name)] = int(fields[11]) + int(fields[12])
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["returning", "session", "anonymous", "product", "floor", "bare"])
    parser.add_argument("--duration", type=int, default=15)
    options = parser.parse_args()
    write_key, secret_key, customers = serve.setup(skip_load=True)
    subprocess.run(["redis-cli", "-n", "12", "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
    paths, headers = serve.case_requests(write_key, secret_key, customers)[options.case]
    server = load.granian(serve.PORT, serve.ENVIRONMENT)
    try:
        if options.case == "session":  # their session lists scored, then the scorer stopped
            scorer = serve.command("score_sessions")
            try:
                serve.browse(customers[1000:], secret_key)
            finally:
                scorer.terminate()
                scorer.wait(timeout=30)
        serve.warm(paths, headers)
        before, started = cpu_ticks(), time.monotonic()
        result = serve.wrk(paths, headers, options.duration, 16, None)
        after, elapsed = cpu_ticks(), time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result))
    per_name: collections.Counter[str] = collections.Counter()
    for key, ticks in after.items():
        per_name[key[1]] += ticks - before.get(key, 0)
    hertz = os.sysconf("SC_CLK_TCK")
    for name, ticks in per_name.most_common(4):
        cores = ticks / hertz / elapsed
        print(f"{name:<20} {cores:.2f} cores, {cores / result['requests_per_s'] * 1e6:.0f} µs a request")


if __name__ == "__main__":
    main()
