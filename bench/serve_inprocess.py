"""The CPU of one request of each bench/serve.py case in one process, with no HTTP server: where a
request's time goes, without the server's threads, wrk or the other processes on the two cores.

    .venv/bin/python bench/serve_inprocess.py [case ...] [--requests 3000] [--profile]

Uses the database and models of an earlier `bench/serve.py` run (it never loads them). Each case
calls the product's WSGI application (config.wsgi, as granian does) with the same paths and
headers as bench/serve.py (the returning customers with no session), after one untimed pass
over all of them, and prints the wall and CPU time per request. ``redis`` is not a request: it
times one MGET of six keys through redis-py (the client serving uses) against the same command
written to a plain socket, so the client's own cost per round trip is known. ``--profile`` adds
cProfile's 30 costliest calls of each case.
"""

import argparse
import cProfile
import io
import os
import pstats
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import serve  # noqa: E402 (the project on the path first)

CASES = ["bare", "floor", "anonymous", "returning", "product", "redis"]


def timed(label: str, count: int, call: Callable[[], Any]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<40} {1e6 * wall / count:7.0f} µs wall {1e6 * cpu / count:7.0f} µs CPU")


def environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    path_info, _, query = path.partition("?")
    values: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(serve.PORT),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": f"127.0.0.1:{serve.PORT}",
        "HTTP_USER_AGENT": serve.BROWSER,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
    }
    values.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return values


def requests_case(paths: list[str], headers: dict[str, str]) -> Callable[[], None]:
    from config.wsgi import application

    statuses: list[str] = []
    position = 0

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Callable[[bytes], object]:
        statuses.append(status)
        return lambda data: None  # the write() callable of WSGI: Django answers through the iterable

    def one() -> None:
        nonlocal position
        body = application(environ(paths[position % len(paths)], headers), start_response)
        b"".join(body)
        body.close()
        position += 1
        if not statuses.pop().startswith("200"):
            raise SystemExit(f"{paths[(position - 1) % len(paths)]} did not answer 200")

    for _ in paths:  # untimed: every path once
        one()
    return one


def redis_cases(count: int) -> None:
    import redis

    keys = [f"bench:inprocess:{n}" for n in range(6)]
    client = redis.Redis(host="127.0.0.1", port=6379, db=12)
    client.set(keys[0], b"x" * 200)
    timed("MGET of 6 keys, redis-py", count, lambda: client.mget(keys))
    raw = socket.create_connection(("127.0.0.1", 6379))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    command = b"".join(
        [f"*{len(keys) + 1}\r\n$4\r\nMGET\r\n".encode()] + [f"${len(k)}\r\n{k}\r\n".encode() for k in keys]
    )
    raw.sendall(b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n")
    raw.recv(64)
    buffer = bytearray(1 << 16)

    def plain() -> None:  # the reply (~250 bytes) comes in one read on the loopback
        raw.sendall(command)
        raw.recv_into(buffer)

    timed("MGET of 6 keys, a plain socket", count, plain)
    client.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", nargs="*", help=f"of {', '.join(CASES)}; all of them if none")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    if unknown := set(options.case) - set(CASES):
        parser.error(f"unknown case {', '.join(sorted(unknown))}: the cases are {', '.join(CASES)}")
    os.environ.update(serve.ENVIRONMENT)
    write_key, secret_key, customers = serve.setup(skip_load=True)
    subprocess.run(["redis-cli", "-n", "12", "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
    requests = serve.case_requests(write_key, secret_key, customers)
    for case in options.case or CASES:
        if case == "redis":
            redis_cases(options.requests)
            continue
        one = requests_case(*requests[case])
        timed(case, options.requests, one)
        if options.profile:
            profile = cProfile.Profile()
            for _ in range(options.requests):
                profile.runcall(one)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
