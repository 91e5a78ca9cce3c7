"""Each browsing visitor's list, scored when their session changes rather than when they ask.

A visitor who viewed or carted something in this visit is scored with the blend over every item
(``recommendations.rank_for_visitor``). That is most of a request's CPU, and the same visitor
used to pay it again on every page of the visit, although their session changes far less often
than they ask. So, with Redis:

1. The consumer notes whose session it changed (``tracking.live_mirror.sessions_mark``).
2. ``python manage.py score_sessions`` takes those profiles
   (``personalization.services.session_lists_score``). It checks each visitor's personalization
   consent: without it, there is no list, and an old one is deleted. It then scores them in
   batches and stores each one's best ``PZ_SESSION_LIST_ITEMS`` item rows, with their scores
   and leading parts. The list sits beside the live mirror's entry, under ``slist:<profile key>``.
   It is stored with a fingerprint of everything the scores depend on
   (``recommendations.session_fingerprint``): the model version and revision, the person's row,
   the session's item weights, and the country: the person's own, or the one their requests
   ask with, which serving notes (``country_note``) the first time it sees it.
3. Serving reads these entries in the consent's round trip. If a fingerprint matches what it would
   score with now, it serves that list as it serves the precomputed one (filtered by the catalog
   and the context; scored live when the filters leave too few). Otherwise (a view not scored
   yet, another model), it scores live as before. A list is never served for inputs it was not
   scored from.
4. A list is stored only if the visitor's profile in the mirror is still the one it was scored
   from (``lists_write``): two scorers can't leave an older list over a newer one.
   An erasure deletes them; an export lists them (registered in ``personalization.apps``).
5. When another model version is activated, or an erasure rewrites the active one, no stored list
   matches any more. The first ``score_sessions`` to see the new model notes every visitor who
   has a list as if their session had changed (``services.session_lists_renew``), and they are
   scored again with it, in the background, as their sessions are.

This module is the lists' storage; the scoring is in ``personalization.services.session_lists``.
"""

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
from django.conf import settings
from django.core.cache import cache

from config.cache import redis_cache
from consent.subjects import Identities
from personalization.recommenders.hybrid import TopLists
from tracking import live_mirror

PREFIX = "slist:"
COUNTRY_PREFIX = "slist-country:"  # the country a visitor's requests ask with (``country_note``)
MODEL_KEY = "slist-model"  # the model (version:revision) the lists were last renewed for
LIST_SECONDS = live_mirror.MIRROR_SECONDS
FINGERPRINT_BYTES = 16


def enabled() -> bool:
    return live_mirror.mirrored() and settings.PZ_SESSION_LISTS


def cache_keys(profile_keys: Sequence[str]) -> list[str]:
    """The cache keys of these profiles' lists (to read them along with others)."""
    return [PREFIX + key for key in profile_keys]


def entry_of(fingerprint: bytes, version_id: int, listed: TopLists) -> bytes:
    """The stored form of one visitor's list (``TopLists.one``) scored from the inputs of this fingerprint."""
    payload = [
        version_id,
        round(time.time()),
        listed.parts,
        listed.rows.astype(np.int32).tobytes(),
        listed.scores.astype(np.float64).tobytes(),
        listed.leading.astype(np.int8).tobytes(),
        listed.shares.astype(np.int16).tobytes(),
    ]
    return fingerprint + msgspec.msgpack.encode(payload)


def _decoded(entry: bytes) -> tuple[int, int, TopLists]:
    """(model version, when scored, the list)."""
    version_id, scored_at, parts, rows, scores, leading, shares = msgspec.msgpack.decode(entry[FINGERPRINT_BYTES:])
    arrays = (
        np.frombuffer(rows, dtype=np.int32),
        np.frombuffer(scores, dtype=np.float64),
        np.frombuffer(leading, dtype=np.int8),
        np.frombuffer(shares, dtype=np.int16),
    )
    return version_id, scored_at, TopLists(parts, *arrays)


def matching(entries: Sequence[bytes | None], fingerprint: bytes) -> TopLists | None:
    """The first of these stored lists that was scored from the inputs of this fingerprint."""
    for entry in entries:
        if entry is not None and entry[:FINGERPRINT_BYTES] == fingerprint:
            return _decoded(entry)[2]
    return None


def lists_write(entries: Mapping[str, bytes], scored_from: Mapping[str, bytes | None] | None = None) -> int:
    """Store lists by profile key (one round trip), each only while the live mirror holds that
    profile: an erasure that deleted it after the list was scored, or a profile merged into
    another meanwhile, leaves no list behind. ``scored_from``: the mirror entry each list was
    scored from. A list whose profile has changed since is not stored (a slower scorer must not
    put back a list older than the one another scorer stored meanwhile); its visitor is noted
    to be scored again, with what they are now. Returns how many were stored."""
    if not entries:
        return 0
    keys = list(entries)
    prefixed = dict(zip(cache_keys(keys), entries.values(), strict=True))
    guards = live_mirror.cache_keys(keys)
    expected = [(scored_from or {}).get(key) for key in keys]
    written, changed = redis_cache().set_many_raw_where(
        prefixed, guards, live_mirror.ENTRY_PROFILE_PREFIX, LIST_SECONDS, expected
    )
    if changed:
        live_mirror.sessions_mark([keys[position] for position in changed])
    return written


def country_keys(profile_keys: Sequence[str]) -> list[str]:
    """The cache keys of the countries noted for these profiles (to read them along with others)."""
    return [COUNTRY_PREFIX + key for key in profile_keys]


def country_note(profile_key: str, country: str) -> None:
    """Note that this visitor's requests ask with this country (a shop's widgets may pass one):
    their lists are scored with it from now on, and they are noted to be scored again now. A
    list scored with their own country would never match such a request (the country is part of
    the fingerprint), and they would be scored live on every one."""
    redis_cache().set_many_raw({COUNTRY_PREFIX + profile_key: country.encode()}, LIST_SECONDS)
    live_mirror.sessions_mark([profile_key])


def countries_read(profile_keys: Sequence[str]) -> list[str]:
    """The country noted for each of these profiles ("" where none is)."""
    if not live_mirror.mirrored() or not profile_keys:
        return [""] * len(profile_keys)
    return [(value or b"").decode() for value in redis_cache().get_many_raw(country_keys(profile_keys))]


def lists_read(profile_keys: Sequence[str]) -> list[bytes | None]:
    return redis_cache().get_many_raw(cache_keys(profile_keys)) if live_mirror.mirrored() and profile_keys else []


def listed_keys() -> Iterator[list[str]]:
    """The profile keys that have a stored list, in batches (a walk over the whole cache)."""
    for keys in redis_cache().keys_starting(PREFIX):
        yield [key[len(PREFIX) :] for key in keys]


def model_note(version_id: int, revision: int) -> bool:
    """Note that lists are now scored with this model; True for the first process to note it."""
    noted = f"{version_id}:{revision}".encode()
    return redis_cache().swap(MODEL_KEY, noted) != noted


def lists_forget(profile_keys: Iterable[str], *, countries_of: Iterable[str] = ()) -> None:
    """Delete these profiles' lists, and the countries noted for those of ``countries_of`` (one round trip)."""
    keys = cache_keys(list(profile_keys)) + country_keys(list(countries_of))
    if live_mirror.mirrored() and keys:
        cache.delete_many(keys)


def _profile_keys(identities: Identities) -> list[str]:
    return [f"u:{user_id}" for user_id in identities.user_ids] + [f"a:{a}" for a in identities.anonymous_ids]


def subject_export(identities: Identities) -> dict[str, Any]:
    """The lists scored for the person's sessions: the products, best first, by model version."""
    from personalization.model_store import active_model  # the registry loads before the models

    keys = _profile_keys(identities)
    model = active_model() if keys and live_mirror.mirrored() else None
    lists = []
    countries = dict(zip(keys, countries_read(keys), strict=True))
    for key, entry in zip(keys, lists_read(keys), strict=False):
        if entry is None:
            continue
        version_id, scored_at, listed = _decoded(entry)
        known = model is not None and model.version_id == version_id
        lists.append(
            {
                "profile": key,
                "model_version": version_id,
                "scored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(scored_at)),
                "products": [str(model.skus[row]) for row in listed.rows] if model is not None and known else [],
                "item_rows": [] if known else listed.rows.tolist(),
            }
        )
    asked = [{"profile": key, "country": country} for key, country in countries.items() if country]
    return {"session_lists": lists, "session_list_countries": asked}


def subject_erase(identities: Identities) -> dict[str, int]:
    keys = _profile_keys(identities)
    found = sum(entry is not None for entry in lists_read(keys))
    countries = sum(bool(country) for country in countries_read(keys))
    lists_forget(keys, countries_of=keys)
    return {"session lists deleted": found, "session list countries deleted": countries}
