"""The times of an event: which ones are taken, and the event's time corrected for the client's clock.

Pure: no Django. Every time that leaves here has a time zone and lies inside ``EARLIEST``–``LATEST``,
so the consumer never meets a naive datetime and the skew correction cannot leave Python's range.
"""

from datetime import UTC, datetime, timedelta

FUTURE_TOLERANCE = timedelta(minutes=5)

# The times an event may carry. Wide enough for any shop's history and any client clock that is
# merely wrong; what lies outside is a broken clock or a broken SDK, and would make the skew
# correction overflow (year 1, year 9999) or a stored row nonsensical.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE_REASON = "must be a time from 1970 to 2099"


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC. A time without a time zone is taken as UTC, as Segment's API does: server
    libraries print UTC that way (Python's ``datetime.utcnow().isoformat()``)."""
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_in_range(moment: datetime) -> datetime | None:
    """``moment`` with a time zone (its own, or UTC when it had none), or None when it lies
    outside ``EARLIEST``–``LATEST``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if EARLIEST <= moment < LATEST else None


def corrected_timestamp(
    *, received_at: datetime, timestamp: datetime | None, sent_at: datetime | None
) -> tuple[datetime, bool]:
    """The event's time, corrected for the client's clock as Segment does, and whether it was clamped.

    ``timestamp`` is the time on the client when the event happened (Segment's originalTimestamp).
    With ``sentAt`` (the client's clock when it sent the request), the skew cancels out:
    ``timestamp = receivedAt − (sentAt − originalTimestamp)``. Without it the client's time is
    taken as it is (server-side imports), or ``receivedAt`` when there is none. A result more than
    a few minutes in the future, or before ``EARLIEST`` (a ``sentAt`` far from ``timestamp``), is
    clamped to ``receivedAt``. ``timestamp`` and ``sent_at`` are in range (``time_in_range``).
    """
    received_at = utc(received_at)
    if timestamp is None:
        result = received_at
    elif sent_at is None:
        result = utc(timestamp)
    else:
        result = received_at - (utc(sent_at) - utc(timestamp))
    if result > received_at + FUTURE_TOLERANCE or result < EARLIEST:
        return received_at, True
    return result, False
