"""What the HTTP benchmarks share: the product served as `make run` serves it, and wrk's figures."""

import os
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def granian(port: int, environment: Mapping[str, str], log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """The product under granian with the Makefile's `run` settings, once /healthz answers;
    its output goes to ``log`` (or nowhere)."""
    output = log or subprocess.DEVNULL
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads", "2",
         "--host", "127.0.0.1", "--port", str(port), "config.wsgi:application"],
        cwd=ROOT, env=dict(environment), stdout=output, stderr=output,
    )  # fmt: skip
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("granian did not start")


def wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    """wrk (2 threads) with a Lua ``script`` against ``url``: requests/s, p50 and p99 in ms, and
    the number of answers that were not 2xx or 3xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", handle.name, url]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return {
        "requests_per_s": float(requests.group(1)) if requests else float("nan"),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }
