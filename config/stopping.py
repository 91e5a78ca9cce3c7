"""What the long-running commands (consume_events, score_sessions) share: stopping cleanly."""

import signal
from collections.abc import Callable
from typing import Any


def stop_on_signal() -> Callable[[], bool]:
    """From now on SIGTERM and SIGINT (Ctrl-C) only ask the process to stop: the returned function
    says whether one came, for a loop that finishes its current batch first."""
    stopping = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return lambda: stopping
