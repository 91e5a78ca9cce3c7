"""The recommendation API against a bare Django view served the same way, in one run.

    .venv/bin/python bench/serve.py [--duration 15] [--rate 500] [--skip-load] [--case returning|session|anonymous ...]

Needs PostgreSQL and Redis on 127.0.0.1 and `wrk` (apt-get install wrk). It:
1. loads the whole of UCI Online Retail into a fresh database `pz_bench_serve` and trains the
   recommenders (`--skip-load` reuses an earlier run's);
2. serves the product with granian (2 WSGI workers of 2 threads, as `make run` does), DEBUG off, Redis db 12;
3. has 1,000 known customers view three products each (through the collector and a consumer), and
   waits until `score_sessions` has scored their session lists;
4. with wrk (2 threads), for --duration seconds each, at about --rate (100 connections, each
   waiting an exponentially distributed time between its requests, so that they arrive as a
   Poisson stream) and then flat out (16 connections, maximum throughput):
   - bare: GET a bare Django view (bench/urls.py): the ceiling of the server and the middleware;
   - floor: GET the least any implementation of the API has to do (bench/urls.py): the bare view
     plus one read of the visitor's keys in Redis and one exposure-sized append to a stream, for
     the returning customers, with none of the logic;
   - personalized: GET /api/v1/recommendations?placement=home&userId=… with the secret key, one
     of 1,000 returning customers with nothing done yet in this visit (consent, live profile,
     the list precomputed with the model, the rules);
   - personalized, with a session: the same for the 1,000 customers who just viewed products,
     while they go on viewing (--views per second, through the collector): their list scored
     when their session changed (personalization.session_lists), or scored live over every item
     when the latest view is not scored yet;
   - anonymous: the same with the write key for one of 2,000 browsers that gave no consent
     (the shared, cached non-personalized answer);
   - product page (with --case product): GET …?placement=product-similar&product=…&userId=… for
     the returning customers, each on one of 1,000 products (the product on the page, its
     similar items, the rules).
Before each case every path is asked once, untimed (see ``warm``): the figures are the steady
state, with each visitor's consent state cached and their live profile in the Redis mirror.
A `consume_events` and a `score_sessions` process run beside the server, as `make run` starts
them, on the same two cores: they process the views and the exposures of every answer.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 (the project on the path first)

DATA = ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail.csv.gz"
DATABASE = "pz_bench_serve"
PORT = 8098
# At --rate, each connection waits its share of the rate after each answer: the rate reached is
# connections / (wait + latency). With many connections the wait dominates and the rate is near
# the one asked for, as long as the server keeps up (the table shows the rate reached).
PACED_CONNECTIONS = 100
BROWSING = "personalized, with a session, browsing"
FLOOR = "floor: 2 round trips, no logic"
PRODUCT = "product page (similar, returning)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"  # the collector drops bots
ENVIRONMENT = {
    **os.environ,
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-0000000000000000000000000000000000000",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "CONN_MAX_AGE": "60",
    # The development Redis keeps nothing on disk: what a restart would lose here is only a bench's.
    "PZ_REDIS_VOLATILE_OK": "1",
    "PZ_MODEL_DIR": str(ROOT / "var" / "bench-serve-models"),
    "PYTHONPATH": str(ROOT),
}


def manage(*args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=ENVIRONMENT, check=True, stdout=subprocess.DEVNULL
    )


def setup(skip_load: bool) -> tuple[str, str, list[str]]:
    if not skip_load:
        for sql in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
        manage("migrate", "-v0")
        manage("load_online_retail", str(DATA), "--no-progress")
        manage("train_models", "--activate", "always")
        # As a shop's database is, once autovacuum has been by: the planner knows the tables.
        analyze = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE, "-qc", "VACUUM ANALYZE"]
        subprocess.run(analyze, check=True)
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()
    from django.db.models import Q

    from personalization.models import Placement
    from tracking.models import Customer, Profile
    from tracking.services import source_create

    Placement.objects.update(latency_budget_ms=50)
    keys = source_create(name=f"Bench {time.strftime('%Y-%m-%d %H:%M:%S')}")  # one per run: its events stay
    # The same customers every run: the last 1,000 by id browse before the run (see ``browse``);
    # the first 1,000 come back with no session.
    ordered = list(Customer.objects.order_by("user_id").values_list("user_id", flat=True))
    # Each run starts every customer's visit afresh: an earlier run's views would make the
    # browsing customers' sessions, and so the work per request, grow from run to run. (Until
    # 2750eae the exposures the consumer stored also gave every customer served a profile.)
    Profile.objects.filter(Q(user_id__in=ordered) | Q(anonymous_id__startswith="bench-")).delete()
    return keys.write_key, keys.secret_key, ordered[:1000] + ordered[-1000:]


def script(paths: list[str], headers: dict[str, str], connections: int, rate: float | None) -> str:
    """A wrk script cycling through ``paths``; with ``rate``, each connection waits its share."""
    lines = [f"local paths = {json.dumps(paths).replace('[', '{').replace(']', '}')}", "local n = 0"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += ["request = function()", "  n = n + 1", '  return wrk.format("GET", paths[(n % #paths) + 1])', "end"]
    if rate:  # exponential waits: each connection's requests, and so all of them, arrive as a Poisson stream
        lines += [
            "init = function(args)",
            "  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))",
            "end",
            "delay = function()",
            f"  return -math.log(1 - math.random()) * {connections * 1000 / rate:.3f}",
            "end",
        ]
    return "\n".join(lines) + "\n"


def wrk(
    paths: list[str], headers: dict[str, str], duration: int, connections: int, rate: float | None
) -> dict[str, float]:
    return load.wrk(f"http://127.0.0.1:{PORT}/", script(paths, headers, connections, rate), duration, connections)


def warm(paths: list[str], headers: dict[str, str]) -> None:
    """Ask for every path of a case once, untimed: each worker has imported and loaded the model,
    and each visitor's consent state is in the cache (as for anyone the shop has seen within the
    week the state is kept). The first request of a visitor costs one more read of the database."""
    wrk(paths, headers, 2, 4, None)

    def ask(path: str) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", headers=headers)
        urllib.request.urlopen(request, timeout=30).read()  # noqa: S310 (http, built here)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(ask, paths))


def views(customers: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` product views, each by one of the customers."""
    from personalization.model_store import active_model

    model = active_model()
    if model is None:
        raise RuntimeError("no trained model")
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": customer,
            "anonymousId": f"bench-{customer}",
            "messageId": f"bench-view-{uuid.uuid4()}",
            "properties": {"product_id": str(model.skus[rng.randrange(model.n_items)])},
        }
        for customer in (customers[rng.randrange(len(customers))] for _ in range(count))
    ]


def send(events: list[dict[str, Any]], secret_key: str) -> None:
    """To the collector as the shop's server: its secret key vouches for the customers' user ids
    (a customer's browser would send each one's userToken, which costs the collector the same)."""
    body = json.dumps({"batch": events}).encode()
    headers = {"Content-Type": "application/json", "User-Agent": BROWSER, "Authorization": f"Bearer {secret_key}"}
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/batch", data=body, headers=headers)
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read())  # noqa: S310 (http, built here)
    if answer["accepted"] != len(events):
        raise RuntimeError(f"the collector did not take every view: {answer}")


def browse(customers: list[str], secret_key: str) -> None:
    """Each customer views three products now (through the collector, processed by the consumer as
    in production), and the run waits until their session lists are scored."""
    from tracking import live_mirror, stream
    from tracking.consumer import consume_available

    rng = random.Random(7)
    events = [event for customer in customers for event in views([customer], 3, rng)]
    for start in range(0, len(events), 500):
        send(events[start : start + 500], secret_key)
    consume_available(name="bench-serve")
    deadline = time.monotonic() + 120
    while live_mirror.sessions_waiting() or stream.backlog()["length"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the session lists were not scored within two minutes")
        time.sleep(0.2)


class Browsing(threading.Thread):
    """Customers going on viewing products while a case is measured: ``rate`` views a second, sent
    to the collector in batches of a tenth of a second."""

    def __init__(self, customers: list[str], secret_key: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.customers, self.secret_key, self.rate = customers, secret_key, rate
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        rng = random.Random(11)
        owed = 0.0
        while not self.halt.wait(0.1):
            owed += self.rate / 10
            if owed >= 1:
                send(views(self.customers, int(owed), rng), self.secret_key)
                self.sent += int(owed)
                owed -= int(owed)


def command(*args: str) -> subprocess.Popen[bytes]:
    """A manage.py command running beside the server, as `make run` starts it."""
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=ENVIRONMENT, stdout=subprocess.DEVNULL)


def measure_browsing(
    paths: list[str], headers: dict[str, str], options: argparse.Namespace, customers: list[str], secret_key: str
) -> dict[str, dict[str, float]]:
    """The session case while the customers go on viewing (``Browsing``), processed by a consumer
    and scored by ``score_sessions`` on the same cores. The exposures of the earlier cases are
    dropped from the stream first (every one: an approximate trim keeps whole blocks of them):
    the consumer starts with only this case's work."""
    from tracking import stream

    stream.client().xtrim(stream.STREAM, maxlen=0, approximate=False)
    linger = [] if options.linger_ms is None else ["--linger-ms", str(options.linger_ms)]
    consumer = command("consume_events", "--name", "bench-serve-browsing", *linger)
    browsing = Browsing(customers, secret_key, options.views)
    browsing.start()
    try:
        result = {
            "rate": wrk(paths, headers, options.duration, PACED_CONNECTIONS, options.rate),
            "max": wrk(paths, headers, options.duration, 16, None),
        }
    finally:
        browsing.halt.set()
        browsing.join()
        consumer.terminate()
        consumer.wait(timeout=30)
    result["views"] = {"sent": float(browsing.sent), "per_s": options.views}
    return result


Requests = tuple[list[str], dict[str, str]]  # the paths a case cycles through, and its headers


def case_requests(write_key: str, secret_key: str, customers: list[str]) -> dict[str, Requests]:
    """Each case's requests, by its short name (``setup``'s customers: returning ones first)."""
    from personalization.models import Product

    bearer = {"Authorization": f"Bearer {secret_key}"}
    api = "/api/v1/recommendations?placement=home"
    pages = list(Product.objects.filter(is_active=True).order_by("pk").values_list("sku", flat=True)[:1000])
    product = "/api/v1/recommendations?placement=product-similar"
    return {
        "product": (
            [f"{product}&product={quote(sku)}&userId={c}" for sku, c in zip(pages, customers[:1000], strict=False)],
            bearer,
        ),
        "bare": (["/bench/bare"], {}),
        "floor": ([f"/bench/floor?userId={c}" for c in customers[:1000]], {}),
        "returning": ([f"{api}&userId={c}" for c in customers[:1000]], bearer),
        "session": ([f"{api}&userId={c}" for c in customers[1000:]], bearer),
        "anonymous": ([f"{api}&anonymousId=b{n}&writeKey={write_key}" for n in range(2000)], {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--views", type=float, default=50.0, help="product views a second in the browsing case")
    parser.add_argument("--linger-ms", type=int, help="the consumer's --linger-ms while browsing (default: its own)")
    parser.add_argument(
        "--case",
        action="append",
        choices=["returning", "session", "anonymous", "product"],
        help="only these (and the bare view and the floor)",
    )
    options = parser.parse_args()
    write_key, secret_key, customers = setup(options.skip_load)
    subprocess.run(["redis-cli", "-n", "12", "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
    requests = case_requests(write_key, secret_key, customers)
    cases = {
        "bare view (baseline)": requests["bare"],
        FLOOR: requests["floor"],
        "personalized (userId, secret key)": requests["returning"],
        "personalized, with a session": requests["session"],
        BROWSING: requests["session"],
        "anonymous (no consent, write key)": requests["anonymous"],
    }
    if options.case and "product" in options.case:
        cases[PRODUCT] = requests["product"]
    if options.case:
        names = {
            "returning": "personalized (userId",
            "session": "personalized, with",
            "anonymous": "anonymous",
            "product": PRODUCT,
        }  # and BROWSING
        wanted = [names[case] for case in options.case]
        baselines = ("bare", "floor")
        cases = {k: v for k, v in cases.items() if k.startswith(baselines) or any(k.startswith(w) for w in wanted)}
    server = load.granian(PORT, ENVIRONMENT)
    scorer = command("score_sessions")
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        browse(customers[1000:], secret_key)
        for name, (paths, headers) in cases.items():
            warm(paths, headers)
            if name != BROWSING:
                results[name] = {
                    "rate": wrk(paths, headers, options.duration, PACED_CONNECTIONS, options.rate),
                    "max": wrk(paths, headers, options.duration, 16, None),
                }
            else:
                results[name] = measure_browsing(paths, headers, options, customers[1000:], secret_key)
            print(name, json.dumps(results[name]), flush=True)
    finally:
        for process in (server, scorer):
            process.terminate()
            process.wait(timeout=30)
    bare = results["bare view (baseline)"]["max"]["requests_per_s"]
    print(f"\n{'case':<38} {'at ' + str(int(options.rate)) + ' req/s':>22} {'flat out':>30}")
    print(f"{'':<38} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'× bare':>7}")
    for name, result in results.items():
        rate, top = result["rate"], result["max"]
        ratio = top["requests_per_s"] / bare
        print(
            f"{name:<38} {rate['requests_per_s']:>8.0f} {rate['p50_ms']:>7.2f} {rate['p99_ms']:>7.2f} "
            f"{top['requests_per_s']:>8.0f} {top['p50_ms']:>7.2f} {top['p99_ms']:>7.2f} {ratio:>7.2f}"
        )
        if rate["errors"] or top["errors"]:
            print(f"  non-2xx answers: {rate['errors']:.0f} at the rate, {top['errors']:.0f} flat out")
    if BROWSING in results:
        views = results[BROWSING]["views"]
        print(f"\nwhile browsing: {views['sent']:.0f} product views sent ({views['per_s']:.0f}/s) during the case")
    from personalization.serving import fallback_counts

    # Answers past the placement's 50 ms budget are the precomputed list: cheap, and so flattering.
    print(f"\nanswers that fell back to the precomputed list: {sum(fallback_counts(1).values())}")


if __name__ == "__main__":
    main()
