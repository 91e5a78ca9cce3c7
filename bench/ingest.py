"""Collector and consumer throughput, against baselines measured in the same run.

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 16] [--consumer-events 100000]

Needs PostgreSQL and Redis on 127.0.0.1 and `wrk` (apt-get install wrk). It:
1. migrates a fresh database `pz_bench_ingest` and uses Redis db 9 (flushed);
2. serves the product with granian (2 WSGI workers of 2 threads, as `make run` does) with DEBUG off;
3. with wrk (2 threads, --connections), measures for --duration seconds each:
   - bare: POST to a bare Django view (bench/urls.py) with a one-event body: the ceiling of the
     server and Django's middleware on this machine;
   - single: POST /v1/track, one event per request;
   - batch: POST /v1/batch, 100 events per request;
4. fills the stream with --consumer-events unique events (80% views, 15% adds, 5% orders, from
   5,000 visitors) and measures:
   - baseline: a Redis-only consumer loop (read, decode, acknowledge; no database);
   - one `consume_events` process, then two (on a fresh fill), into PostgreSQL with
     deduplication, sessions, profile updates and orders.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 (the project on the path first)

# --database, --redis-db and --port change these, so that two runs can share the machine.
DATABASE = "pz_bench_ingest"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
REDIS_DB = 9
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
PORT = 8097
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
ENVIRONMENT = {
    **os.environ,
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    # The development Redis keeps nothing on disk: what a restart would lose here is only a bench's.
    "PZ_REDIS_VOLATILE_OK": "1",
}


def configure(database: str, redis_db: int, port: int) -> None:
    global DATABASE, DATABASE_URL, REDIS_DB, REDIS_URL, PORT
    DATABASE, REDIS_DB, PORT = database, redis_db, port
    DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
    REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
    ENVIRONMENT.update(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL)


def setup() -> str:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True
    )
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=ENVIRONMENT, check=True)
    subprocess.run(["redis-cli", "-n", str(REDIS_DB), "flushdb"], check=True, stdout=subprocess.DEVNULL)
    os.environ.update({k: v for k, v in ENVIRONMENT.items() if k != "DJANGO_SETTINGS_MODULE"})
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from consent.models import Purpose
    from consent.services import refresh_policy_cache
    from tracking.services import source_create

    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])  # measure the pipeline, not refusals
    refresh_policy_cache()
    return source_create(name="Bench").write_key


def event(number: int, prefix: str) -> dict[str, Any]:
    kind = number % 20
    visitor = f"visitor-{number % 5000}"
    base: dict[str, Any] = {
        "type": "track",
        "anonymousId": visitor,
        "messageId": f"{prefix}-{number}",
        "timestamp": "2026-11-22T10:00:00Z",
        "context": {"userAgent": CHROME, "page": {"path": f"/shop/p/SKU{number % 300}/"}},
    }
    if kind == 0:
        return {
            **base,
            "event": "Order Completed",
            "properties": {
                "order_id": f"{prefix}-o{number}",
                "revenue": 9.5,
                "products": [{"product_id": f"SKU{number % 300}", "price": 4.75, "quantity": 2}],
            },
        }
    name = "Product Added" if kind < 4 else "Product Viewed"
    return {**base, "event": name, "properties": {"product_id": f"SKU{number % 300}", "price": 4.75}}


def wrk(path: str, body: str, duration: int, connections: int) -> dict[str, float]:
    script = f'wrk.method="POST"\nwrk.headers["Content-Type"]="text/plain"\nwrk.body={json.dumps(body)}\n'
    return load.wrk(f"http://127.0.0.1:{PORT}{path}", script, duration, connections)


def fill(source_id: int, count: int, prefix: str) -> None:
    from django.utils import timezone

    from tracking.ingestion import events_ingest

    for start in range(0, count, 100):
        events_ingest(
            source_id=source_id,
            raw_events=[event(n, prefix) for n in range(start, min(start + 100, count))],
            meta={"REMOTE_ADDR": "127.0.0.1"},
            received_at=timezone.now(),
            user_ids_trusted=True,
        )


def redis_only_baseline(count: int) -> float:
    """Read, decode and acknowledge every entry, no database: the consumer's ceiling."""
    import msgspec

    from tracking import stream

    client = stream.client()
    client.xgroup_create(stream.STREAM, "bench-baseline", id="0")
    seen, started = 0, time.perf_counter()
    while seen < count:
        response: Any = client.xreadgroup("bench-baseline", "b", {stream.STREAM: ">"}, count=20, block=100)
        if not response:
            break
        ids = []
        for entry_id, fields in response[0][1]:
            seen += len(msgspec.json.decode(fields[b"b"])["events"])
            ids.append(entry_id)
        client.xack(stream.STREAM, "bench-baseline", *ids)
    elapsed = time.perf_counter() - started
    client.xgroup_destroy(stream.STREAM, "bench-baseline")
    return seen / elapsed


def consumers(processes: int, count: int, entries: int | None = None) -> float:
    """Events per second stored by `processes` consume_events processes, from the first stored
    event to the last (process start-up excluded)."""
    from tracking.models import Event

    before = Event.objects.count()
    count_option = ["--count", str(entries)] if entries else []  # else consume_events' default
    running = [
        subprocess.Popen(
            [sys.executable, "manage.py", "consume_events", "--name", f"bench-{n}", *count_option],
            cwd=ROOT,
            env={**ENVIRONMENT, "DJANGO_SETTINGS_MODULE": "config.settings"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(processes)
    ]
    first = None
    while True:
        if exited := [process.returncode for process in running if process.poll() is not None]:
            raise SystemExit(f"a consume_events process exited ({exited}): run it by hand to see why")
        stored = Event.objects.count() - before
        if stored and first is None:
            first = (time.perf_counter(), stored)
        if stored >= count:
            break
        time.sleep(0.05)
    last = time.perf_counter()
    for process in running:
        process.terminate()
        process.wait()
    if first is None:
        raise RuntimeError("no event was stored")
    return (count - first[1]) / (last - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--consumer-events", type=int, default=100_000)
    parser.add_argument("--entries", type=int, help="stream entries per micro-batch (consume_events --count)")
    parser.add_argument("--part", choices=["all", "collector", "consumer"], default="all")
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    parser.add_argument("--port", type=int, default=PORT)
    options = parser.parse_args()
    configure(options.database, options.redis_db, options.port)

    write_key = setup()
    from tracking.models import Source

    source_id = Source.objects.get(write_key=write_key).pk
    one = {**event(1, "w"), "writeKey": write_key}
    hundred = {"batch": [event(n, "w") for n in range(100)], "writeKey": write_key}
    results: dict[str, dict[str, float]] = {}
    if options.part in ("all", "collector"):
        results = collector(write_key, one, hundred, options.duration, options.connections)
        print_collector(results, options.duration, options.connections)
    if options.part in ("all", "consumer"):
        subprocess.run(["redis-cli", "-n", str(REDIS_DB), "del", "pz:events"], check=True, stdout=subprocess.DEVNULL)
        n = options.consumer_events
        fill(source_id, n, "c1")
        baseline = redis_only_baseline(n)
        one_process = consumers(1, n, options.entries)
        fill(source_id, n, "c2")
        two_processes = consumers(2, n, options.entries)
        print(f"\nConsumer ({n:,} events each):")
        print(f"redis-only loop (baseline): {baseline:>9,.0f} events/s")
        print(f"1 consume_events process:   {one_process:>9,.0f} events/s ({one_process / baseline:.2f} x baseline)")
        print(
            f"2 consume_events processes: {two_processes:>9,.0f} events/s "
            f"({two_processes / one_process:.2f} x one process)"
        )


def collector(
    write_key: str, one: dict[str, Any], hundred: dict[str, Any], duration: int, connections: int
) -> dict[str, dict[str, float]]:
    server = load.granian(PORT, ENVIRONMENT)
    results: dict[str, dict[str, float]] = {}
    try:
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/batch", json.dumps(hundred).encode())
        )
        results["bare"] = wrk("/bench/bare", json.dumps(one), duration, connections)
        results["single"] = wrk("/v1/track", json.dumps(one), duration, connections)
        results["batch"] = wrk("/v1/batch", json.dumps(hundred), duration, connections)
    finally:
        server.terminate()
        server.wait()
    return results


def print_collector(results: dict[str, dict[str, float]], duration: int, connections: int) -> None:
    print(f"\nCollector (granian, 2 workers x 2 threads, wrk -t2 -c{connections}, {duration} s each):")
    print(f"{'case':<8} {'req/s':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
    for name, per_request in (("bare", 1), ("single", 1), ("batch", 100)):
        r = results[name]
        ratio = r["requests_per_s"] / results["bare"]["requests_per_s"]
        print(
            f"{name:<8} {r['requests_per_s']:>9.0f} {r['requests_per_s'] * per_request:>10.0f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['errors']:>7.0f} {ratio:>8.2f}"
        )


if __name__ == "__main__":
    main()
