"""Faults under a steady load: does every event answered 200 end up stored, once?

    .venv/bin/python bench/faults.py [--rate 150] [--pg-outage-seconds 180] [--gap-seconds 20] [--json]

Runs the production stack on servers of its own, never the shared ones: a PostgreSQL cluster
(initdb into a temporary directory, run as the `postgres` user), a redis-server with an
append-only file, granian serving config.wsgi:application with DEBUG off (as `make run` does),
one `consume_events` and one `score_sessions`, each kept running as systemd's `Restart=always`
would. A loader sends --rate requests a second of unique events (product views, identifies,
orders; one event to /v1/track or /v1/identify, or 2 to 5 to /v1/batch) from many visitors,
resends 5% of the requests answered 200 with the same messageIds (an SDK that missed the
answer), and retries every request answered 5xx or 429, or not answered, with the same
messageIds after a back-off, as the SDKs do. In one run, --gap-seconds apart:

1. kill -9 of the consumer (started again at once, as a supervisor would);
2. kill -9 of Redis, started again on the same append-only file after --redis-down-seconds;
3. PostgreSQL stopped (`pg_ctl stop -m fast`) for --pg-outage-seconds, then started again.

Then the load stops, the retries finish, the stream drains (or --drain-seconds pass), and it
counts from the database: accepted (unique messageIds answered 200), stored (of those, in the
events table), lost (accepted, not stored), duplicates (messageIds stored more than once) and
dead letters (entries and events in pz:events:dead). It exits 1 unless lost, duplicates and
dead-lettered events are all 0. The full run takes 8 to 13 minutes, most of it the outage and
the drain; `--pg-outage-seconds 20 --gap-seconds 5` about 3.
"""

import argparse
import heapq
import http.client
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from base64 import b64encode
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 (the project on the path first)
from tests.outages import RedisServer, wait_until  # noqa: E402
from tracking.source_keys import secret_key_digest, user_token_for  # noqa: E402

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "pz"
STREAM, GROUP, DEAD_LETTERS = "pz:events", "pz-consumers", "pz:events:dead"  # tracking/stream.py
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
# Each event says the shop's own consent tool granted analytics, so that no event is dropped for
# want of consent and every accepted event is one the consumer must store.
CONTEXT = {"userAgent": CHROME, "consent": {"categoryPreferences": {"analytics": True}}}
VISITORS = 20_000
# A request the loader has sent and not had answered 200 is sent again after this back-off
# (doubling from the first, at most the last, with jitter), as Segment's and RudderStack's SDKs do.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 20.0
RETRIED_STATUSES = {429, 500, 502, 503, 504}
STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress, on stderr, so that --json leaves stdout to the result."""
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


class Postgres:
    """A PostgreSQL cluster of the run's own, in ``directory``, on ``port``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.data = directory / "data"
        self.url = f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"

    def _run(self, program: str, *arguments: str) -> None:
        # PostgreSQL refuses to run as root: as root, run it as its own user.
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*as_postgres, str(POSTGRES_BIN / program), *arguments]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def create(self) -> None:
        self.directory.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE)

    def start(self) -> None:
        settings = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data}"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", settings)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, connect_timeout=5)


class Supervised:
    """A process kept running as systemd's ``Restart=always`` would: started again a second
    after it exits. ``kill()`` is a fault of the run; an exit it did not cause is counted."""

    RESTART_SECONDS = 1.0

    def __init__(self, name: str, command: list[str], environment: dict[str, str], log: Path) -> None:
        self.name, self.command, self.environment, self.log = name, command, environment, log
        self.exits: list[int] = []  # exit codes of the exits the run did not cause
        self._process: subprocess.Popen[bytes] | None = None
        self._killed = False
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the run, which stops it, not the process itself
            )

    def _watch(self) -> None:
        while not self._closed.wait(0.2):
            process = self._process
            if process is None or process.poll() is None:
                continue
            if self._killed:
                self._killed = False
            else:
                self.exits.append(process.returncode)
                say(f"{self.name} exited by itself (code {process.returncode}); starting it again")
                if self._closed.wait(self.RESTART_SECONDS):
                    return
            self._spawn()

    def kill(self) -> int:
        """SIGKILL the process (the watcher starts it again); its pid."""
        assert self._process is not None  # noqa: S101 (started before any fault)
        self._killed = True
        self._process.kill()
        return self._process.pid

    def close(self) -> None:
        self._closed.set()
        self._watcher.join(timeout=5)
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@dataclass(order=True)
class Delivery:
    """One request as an SDK holds it until it is answered 200: the same body on every attempt."""

    due: float
    number: int
    path: str = field(compare=False)
    body: bytes = field(compare=False)
    message_ids: frozenset[str] = field(compare=False)
    attempt: int = field(default=0, compare=False)
    resend: bool = field(default=False, compare=False)


@dataclass
class Ledger:
    """What the loader saw: the messageIds answered 200, and how each request went."""

    accepted: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)  # status code, or the client's error
    requests: int = 0
    events: int = 0
    retried: int = 0  # attempts sent again after a 5xx, a 429 or no answer
    resent: int = 0  # requests answered 200 and sent again (duplicates on purpose)
    refused_events: int = 0  # rejected by the collector, or in a request answered another 4xx
    dropped_events: int = 0  # answered 200 without being accepted (a bot, no consent)
    given_up: int = 0  # requests still not answered 200 when the run stopped retrying


def event(rng: random.Random, message_id: str, visitor: str, digest: str) -> dict[str, Any]:
    """A product view, an identify or an order (8 : 1 : 1) from ``visitor``, happening now. The
    identify carries the customer's userToken (``digest``: the secret key's), as pz.js sends it for
    a signed-in customer, so that it links and merges profiles as a proven identify does."""
    context: dict[str, Any] = {**CONTEXT, "page": {"path": f"/shop/p/SKU{rng.randrange(500)}/"}}
    base = {
        "messageId": message_id,
        "anonymousId": visitor,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "context": context,
    }
    roll = rng.random()
    if roll < 0.1:
        user_id = f"customer-{visitor}"
        proven = {**context, "pz": {"userToken": user_token_for(digest, user_id)}}
        return {**base, "type": "identify", "userId": user_id, "context": proven, "traits": {"plan": "fault-bench"}}
    product = {"product_id": f"SKU{rng.randrange(500)}", "price": 4.75}
    if roll < 0.2:
        return {
            **base,
            "type": "track",
            "event": "Order Completed",
            "properties": {"order_id": message_id, "revenue": 9.5, "products": [{**product, "quantity": 2}]},
        }
    return {**base, "type": "track", "event": "Product Viewed", "properties": product}


@dataclass
class Keys:
    write_key: str
    secret_key_digest: str


class Load:
    """A steady ``rate`` of requests, their retries and resends, sent by ``workers`` threads."""

    def __init__(
        self, port: int, keys: Keys, *, rate: float, resend_share: float, seed: int, workers: int = 32
    ) -> None:
        self.port, self.rate, self.resend_share, self.digest = port, rate, resend_share, keys.secret_key_digest
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(f"{keys.write_key}:".encode()).decode(),
        }
        self.ledger = Ledger()
        self._rng = random.Random(seed)
        self._run = uuid.uuid4().hex[:8]  # messageIds unique across runs
        self._queue: list[Delivery] = []
        self._numbers = itertools.count()
        self._in_flight = 0
        self._condition = threading.Condition()
        self._producing = threading.Event()
        self._closed = False
        self._threads = [threading.Thread(target=self._produce, daemon=True)]
        self._threads += [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def start(self) -> None:
        self._producing.set()
        for thread in self._threads:
            thread.start()

    def stop_new(self) -> None:
        """No new requests; retries and resends go on."""
        self._producing.clear()

    def settle(self, timeout: float) -> None:
        """Wait until every request is answered 200 (or refused), at most ``timeout`` seconds;
        what is left then is given up."""
        with suppress(TimeoutError):
            wait_until(self._settled, timeout=timeout, interval=0.5)
        with self._condition:
            self._closed = True
            self.ledger.given_up = len(self._queue) + self._in_flight
            self._condition.notify_all()

    def _settled(self) -> bool:
        with self._condition:
            return not self._queue and not self._in_flight

    def _new_delivery(self) -> Delivery:
        number = next(self._numbers)
        visitor = f"visitor-{self._rng.randrange(VISITORS)}"
        size = 1 if number % 2 else self._rng.randint(2, 5)
        events = [event(self._rng, f"{self._run}-{number}-{n}", visitor, self.digest) for n in range(size)]
        if size == 1:
            path, body = f"/v1/{events[0]['type']}", events[0]
        else:
            path, body = "/v1/batch", {"batch": events}
        ids = frozenset(e["messageId"] for e in events)
        return Delivery(0.0, number, path, json.dumps(body).encode(), ids)

    def _schedule(self, delivery: Delivery, due: float) -> None:
        delivery.due = due
        with self._condition:
            heapq.heappush(self._queue, delivery)
            self._condition.notify()

    def _produce(self) -> None:
        started = time.monotonic()
        for sent in itertools.count(1):
            if not self._producing.is_set():
                return
            delivery = self._new_delivery()
            with self._condition:
                self.ledger.requests += 1
                self.ledger.events += len(delivery.message_ids)
            self._schedule(delivery, time.monotonic())
            time.sleep(max(0.0, started + sent / self.rate - time.monotonic()))

    def _next(self) -> Delivery | None:
        with self._condition:
            while not self._closed:
                now = time.monotonic()
                if self._queue and self._queue[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._queue)
                self._condition.wait(self._queue[0].due - now if self._queue else 0.5)
            return None

    def _work(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while (delivery := self._next()) is not None:
            try:
                connection.request("POST", delivery.path, delivery.body, self.headers)
                response = connection.getresponse()
                outcome, answer = str(response.status), response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # a new connection for the next attempt
                outcome, answer = type(exc).__name__, b""
            with self._condition:
                self._in_flight -= 1
                self._record(delivery, outcome, answer)

    def _record(self, delivery: Delivery, outcome: str, answer: bytes) -> None:
        ledger = self.ledger
        ledger.answers[outcome] += 1
        if outcome == "200":
            self._record_accepted(delivery, json.loads(answer))
        elif not outcome.isdigit() or int(outcome) in RETRIED_STATUSES:
            ledger.retried += 1
            backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2**delivery.attempt) * self._rng.uniform(0.5, 1.5)
            delivery.attempt += 1
            self._schedule(delivery, time.monotonic() + backoff)
        else:
            ledger.refused_events += len(delivery.message_ids)

    def _record_accepted(self, delivery: Delivery, answer: dict[str, Any]) -> None:
        rejected = {r.get("messageId") for r in answer.get("rejected", [])}
        kept = delivery.message_ids - rejected
        self.ledger.refused_events += len(delivery.message_ids) - len(kept)
        if answer.get("accepted") == len(kept):
            self.ledger.accepted |= kept
        else:  # which of them were dropped the answer does not say: none counts as accepted
            self.ledger.dropped_events += len(kept)
        if not delivery.resend and self._rng.random() < self.resend_share:
            self.ledger.resent += 1
            resend = Delivery(0.0, next(self._numbers), delivery.path, delivery.body, delivery.message_ids)
            resend.resend = True
            self._schedule(resend, time.monotonic() + 1.0)


@dataclass
class Stack:
    postgres: Postgres
    redis: RedisServer
    consumer: Supervised
    port: int
    keys: Keys


def environment(postgres: Postgres, redis_server: RedisServer) -> dict[str, str]:
    """Production settings (DEBUG off), on this run's servers."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis_server.url,
        "DEBUG": "0",
        "SECRET_KEY": "fault-bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback
    }


def manage(env: dict[str, str], *arguments: str) -> str:
    command = [sys.executable, "manage.py", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


@contextmanager
def production_stack(directory: Path, options: argparse.Namespace) -> Iterator[Stack]:
    """Every server of the run, started in order and stopped (killed if need be) on the way out."""
    with ExitStack() as stack:
        postgres = Postgres(directory / "postgres", options.postgres_port)
        stack.callback(_stop_quietly, postgres)
        postgres.create()
        redis_server = RedisServer(directory / "redis", appendonly=True, port=options.redis_port).start()
        stack.callback(redis_server.stop)
        env = environment(postgres, redis_server)
        say("migrating a fresh database")
        manage(env, "migrate", "--noinput", "-v0")
        printed = manage(env, "create_source", "Fault bench")
        write, secret = (re.search(rf"{label} key:\s+(\S+)", printed) for label in ("Write", "Secret"))
        if write is None or secret is None:
            raise SystemExit(f"create_source printed no keys: {printed!r}")
        keys = Keys(write.group(1), secret_key_digest(secret.group(1)))
        server_log = (directory / "granian.log").open("ab")
        stack.callback(server_log.close)
        server = load.granian(options.http_port, env, log=server_log)
        stack.callback(_terminate, server)
        processes = {
            "consume_events": ["--name", "fault-bench"],  # one name across restarts: it resumes its own pending
            "score_sessions": [],
        }
        supervised = {}
        for command, arguments in processes.items():
            process = Supervised(
                command, [sys.executable, "manage.py", command, *arguments], env, directory / f"{command}.log"
            )
            process.start()
            stack.callback(process.close)
            supervised[command] = process
        say(f"stack up: PostgreSQL :{postgres.port}, Redis :{redis_server.port} (AOF), granian :{options.http_port}")
        yield Stack(postgres, redis_server, supervised["consume_events"], options.http_port, keys)


def _stop_quietly(postgres: Postgres) -> None:
    with suppress(subprocess.CalledProcessError):  # not started, or already stopped
        postgres.stop("immediate")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def inflict_faults(stack: Stack, options: argparse.Namespace) -> None:
    """The three faults, ``--gap-seconds`` of steady load before, between and after them."""
    time.sleep(options.gap_seconds)
    say(f"kill -9 consume_events (pid {stack.consumer.kill()}); the supervisor starts it again")
    time.sleep(options.gap_seconds)
    say("kill -9 redis-server")
    stack.redis.stop()
    time.sleep(options.redis_down_seconds)
    stack.redis.start()
    say("redis-server started again on its append-only file")
    time.sleep(options.gap_seconds)
    say(f"pg_ctl stop -m fast: PostgreSQL down for {options.pg_outage_seconds} s")
    stack.postgres.stop()
    time.sleep(options.pg_outage_seconds)
    stack.postgres.start()
    say("PostgreSQL started again")
    time.sleep(options.gap_seconds)


def backlog(redis_server: RedisServer) -> tuple[int, int]:
    """Entries in the event stream, and of those delivered and not acknowledged."""
    client = redis_server.client()
    length = int(client.xlen(STREAM))
    groups: Any = client.xinfo_groups(STREAM) if length else []
    pending = sum(int(group["pending"]) for group in groups if group["name"] in (GROUP, GROUP.encode()))
    return length, pending


def drain(redis_server: RedisServer, timeout: float) -> None:
    """Wait until the stream is empty, at most ``timeout`` seconds, saying what is left now and then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = backlog(redis_server)
        if left == (0, 0):
            return
        say(f"in the stream: {left[0]:,} entries, {left[1]:,} pending")
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))


def entries_of(redis_server: RedisServer, key: str) -> tuple[int, set[str]]:
    """The entries in the stream ``key``, and the messageIds of their events."""
    entries: Any = redis_server.client().xrange(key)
    message_ids = set()
    for _, fields in entries:
        batch = json.loads(fields[b"b"])
        message_ids |= {e["messageId"] for e in batch.get("events", [])}
    return len(entries), message_ids


def stored_counts(postgres: Postgres, write_key: str) -> Counter[str]:
    """How many times each messageId of the run's source is in the events table."""
    query = """
        SELECT e.message_id, count(*) FROM tracking_event e JOIN tracking_source s ON s.id = e.source_id
        WHERE s.write_key = %s GROUP BY e.message_id
    """
    with postgres.connect() as connection:
        return Counter(dict(connection.execute(query, (write_key,)).fetchall()))


# The result's figures, in the order and with the words of the printed table.
ROWS = {
    "accepted": "accepted (unique messageIds answered 200)",
    "stored": "stored (of those, in the events table)",
    "lost": "lost (accepted, not stored)",
    "lost_in_dead_letters": "  of which in the dead letters",
    "lost_in_stream": "  of which still in the stream (not drained)",
    "duplicates": "duplicates (messageIds stored more than once)",
    "dead_lettered_entries": "dead-lettered entries",
    "dead_lettered_events": "dead-lettered events",
    "stored_not_acknowledged": "stored, never answered 200",
    "left_in_stream": "left in the stream (entries / pending)",
    "requests": "requests (new)",
    "events_sent": "events sent (new)",
    "retried": "retried after a 5xx, 429 or no answer",
    "resent": "resent after a 200 (duplicates on purpose)",
    "given_up": "given up (never answered 200)",
    "refused_events": "events refused (4xx, rejected)",
    "dropped_events": "events dropped by the collector",
    "consumer_exits": "consumer exits not caused by the run",
}


def tally(stack: Stack, load_run: Load, consumer_exits: int) -> dict[str, Any]:
    ledger = load_run.ledger
    stored = stored_counts(stack.postgres, stack.keys.write_key)
    entries, dead_ids = entries_of(stack.redis, DEAD_LETTERS)
    _, waiting_ids = entries_of(stack.redis, STREAM)
    length, pending = backlog(stack.redis)
    lost = ledger.accepted - stored.keys()
    return {
        "accepted": len(ledger.accepted),
        "stored": len(ledger.accepted & stored.keys()),
        "duplicates": sum(1 for count in stored.values() if count > 1),
        "dead_lettered_entries": entries,
        "dead_lettered_events": len(dead_ids),
        "lost": len(lost),
        "lost_in_dead_letters": len(lost & dead_ids),
        "lost_in_stream": len(lost & waiting_ids),
        "stored_not_acknowledged": len(stored.keys() - ledger.accepted),
        "left_in_stream": {"entries": length, "pending": pending},
        "requests": ledger.requests,
        "events_sent": ledger.events,
        "retried": ledger.retried,
        "resent": ledger.resent,
        "given_up": ledger.given_up,
        "refused_events": ledger.refused_events,
        "dropped_events": ledger.dropped_events,
        "answers": dict(sorted(ledger.answers.items())),
        "consumer_exits": consumer_exits,
    }


def print_table(result: dict[str, Any], options: argparse.Namespace) -> None:
    print(
        f"\nFaults under {options.rate:g} requests/s: kill -9 of the consumer, Redis restarted (AOF), "
        f"PostgreSQL stopped {options.pg_outage_seconds} s"
    )
    print("| | |\n|---|---:|")
    for key, label in ROWS.items():
        value = result[key]
        if key == "left_in_stream":
            value = "{entries:,} / {pending:,}".format(**value)
        print(f"| {label} | {value:,} |" if isinstance(value, int) else f"| {label} | {value} |")
    print("\nAnswers: " + ", ".join(f"{outcome}: {count:,}" for outcome, count in result["answers"].items()))


def run(options: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="pz-faults-"))
    directory.chmod(0o755)  # the postgres user reaches its cluster inside
    try:
        with production_stack(directory, options) as stack:
            load_run = Load(
                stack.port, stack.keys, rate=options.rate, resend_share=options.resend_share, seed=options.seed
            )
            load_run.start()
            say(f"load: {options.rate:g} requests/s, {options.resend_share:.0%} resent")
            inflict_faults(stack, options)
            load_run.stop_new()
            say("load stopped; waiting for the retries")
            load_run.settle(options.retry_seconds)
            say("waiting for the stream to drain")
            drain(stack.redis, options.drain_seconds)
            return tally(stack, load_run, len(stack.consumer.exits))
    finally:
        if options.keep:
            say(f"logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150, help="new requests a second")
    parser.add_argument("--resend-share", type=float, default=0.05, help="requests answered 200 sent again")
    parser.add_argument("--pg-outage-seconds", type=int, default=180)
    parser.add_argument("--redis-down-seconds", type=int, default=5)
    parser.add_argument("--gap-seconds", type=int, default=20, help="steady load before, between and after faults")
    parser.add_argument("--retry-seconds", type=int, default=600, help="how long the loader keeps retrying")
    parser.add_argument("--drain-seconds", type=int, default=600, help="how long to wait for the stream to drain")
    parser.add_argument("--postgres-port", type=int, default=18501)
    parser.add_argument("--redis-port", type=int, default=18502)
    parser.add_argument("--http-port", type=int, default=18503)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    options = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C does: every server stopped, the directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(options)
    except KeyboardInterrupt:
        say("interrupted: every server stopped, the directory removed")
        sys.exit(130)
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result, options)
    sys.exit(1 if result["lost"] or result["duplicates"] or result["dead_lettered_events"] else 0)


if __name__ == "__main__":
    main()
