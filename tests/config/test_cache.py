"""The Redis cache's own operations (``config.cache.RedisCache``), on the real Redis."""

import pytest
from django.conf import settings

from config.cache import redis_cache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="operations of the Redis cache")


def test_keys_starting_finds_every_key_of_a_kind_and_no_other() -> None:
    cache = redis_cache()
    wanted = {f"kind:[{n}]*" for n in range(2_500)}  # glob characters in the keys are matched as such
    cache.set_many(dict.fromkeys(wanted, 1) | {"kind-other": 1, "other:kind:1": 1, "kinds:1": 1}, 60)
    cache.set("kind:[", 1, 60)
    batches = list(cache.keys_starting("kind:[", batch=500))
    found = [key for batch in batches for key in batch]
    assert len(batches) > 1  # SCAN may give a key twice: its callers take sets
    assert set(found) == wanted | {"kind:["}
    cache.delete_many([*wanted, "kind:["])
    assert list(cache.keys_starting("kind:[")) == []


def test_swap_answers_what_the_key_held() -> None:
    cache = redis_cache()
    cache.delete("swapped")
    assert cache.swap("swapped", b"1:0") is None
    assert cache.swap("swapped", b"2:0") == b"1:0"
    assert cache.swap("swapped", b"2:0") == b"2:0"
    cache.delete("swapped")


def test_set_many_raw_where_writes_only_under_the_guards_expected() -> None:
    cache = redis_cache()
    cache.set_many_raw({"guard:a": b"P:one", "guard:b": b"P:two", "guard:c": b"X:three"}, 60)
    cache.delete_many(["value:a", "value:b", "value:c", "value:d"])
    written, changed = cache.set_many_raw_where(
        {"value:a": b"1", "value:b": b"2", "value:c": b"3", "value:d": b"4"},
        ["guard:a", "guard:b", "guard:c", "guard:d"],
        b"P:",
        60,
        [b"P:one", b"P:was-two", None, None],
    )
    # a: as expected; b: has the prefix but changed; c: no prefix; d: no guard at all
    assert (written, changed) == (1, [1])
    assert cache.get_many_raw(["value:a", "value:b", "value:c", "value:d"]) == [b"1", None, None, None]
    assert cache.set_many_raw_where({"value:b": b"2"}, ["guard:b"], b"P:", 60) == (1, [])  # the prefix only
    cache.delete_many(["guard:a", "guard:b", "guard:c", "value:a", "value:b"])
