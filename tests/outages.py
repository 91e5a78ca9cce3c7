"""Stores that a test owns, so it can take them down: a private ``redis-server`` and a TCP proxy in
front of the shared PostgreSQL. The shared servers themselves are never stopped.

- ``RedisServer``: a redis-server process of the test's own on a free port, with or without
  an append-only file, that the test stops, starts again and restarts.
- ``TcpProxy``: forwards a local port to a server. ``cut()`` closes every connection through it
  and refuses new ones (what a client sees while the server is down); ``restore()`` accepts again.
- The ``private_redis`` and ``database_outage`` fixtures (in ``tests/conftest.py``) point this
  process's settings and connections at them for one test.
- ``assert_store_unavailable``: what an API answers while a store it needs is down.
"""

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def assert_store_unavailable(response: Any) -> None:
    """The 503 of a request a store's outage stopped (``config.api_errors``)."""
    assert response.status_code == 503
    assert (response["Retry-After"], response["Cache-Control"]) == ("30", "no-store")
    body = response.json()
    assert body.pop("success", False) is False  # the collector's answers say it; the API's have no such key
    assert body == {
        "code": "store_unavailable",
        "detail": "A store the platform needs is unavailable; nothing was changed. Retry later.",
        "fields": {},
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Call ``condition`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{condition!r} did not hold within {timeout} s")
        time.sleep(interval)


class RedisServer:
    """A redis-server of the test's own. ``appendonly``: persist with AOF (fsync every write, so
    a restart keeps everything answered); otherwise it keeps nothing on disk."""

    def __init__(self, directory: Path, *, appendonly: bool = True, port: int | None = None) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def start(self) -> "RedisServer":
        arguments = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        arguments += ["--save", "", "--logfile", str(self.directory / "redis.log")]
        arguments += ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers)
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Kill the server at once (SIGKILL): what it had not written to disk is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpProxy:
    """A local port forwarded to ``target``; ``cut()`` makes the target unreachable through it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut: the listener was closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            for reader, writer in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(reader, writer), daemon=True).start()

    def _pipe(self, reader: socket.socket, writer: socket.socket) -> None:
        try:
            while data := reader.recv(65536):
                writer.sendall(data)
        except OSError:
            pass
        finally:
            for end in (reader, writer):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            with self._lock:
                self._connections.difference_update((reader, writer))

    def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a stopped server would."""
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def close(self) -> None:
        self.cut()
