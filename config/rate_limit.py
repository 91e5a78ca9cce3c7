"""A fixed-window rate limit on the shared cache (Redis INCR in production, so atomic across processes).

Written here rather than taken from django-ratelimit: it is a dozen lines on Django's own cache API,
and django-ratelimit's system checks warn on the local-memory cache of the embedded configuration.
"""

from django.core.cache import cache


def rate_limited(key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit for ``key``; True once more than ``limit`` hits fall in the current window."""
    cache_key = f"ratelimit:{key}"
    if cache.add(cache_key, 1, window_seconds):
        return limit < 1
    try:
        return cache.incr(cache_key) > limit
    except ValueError:  # the window expired between add() and incr(): this hit opens a new one
        cache.add(cache_key, 1, window_seconds)
        return False
