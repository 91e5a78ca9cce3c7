"""Scoring browsing visitors' lists ahead of their requests (see ``personalization.session_lists``)."""

import numpy as np
import scipy.sparse as sp
from django.conf import settings

from consent.selectors import consent_allows_each
from consent.subjects import Subject
from personalization import session_lists
from personalization.model_store import LoadedModel, active_model
from personalization.recommendations import scoring_inputs, session_fingerprint, session_matrix
from personalization.recommenders.base import Visitors, one_row
from tracking import live_mirror
from tracking.selectors import live_profile

BATCH = 64  # visitors scored together: one pass of the blend over a 64 × items block


def _subject_of(profile_key: str) -> Subject:
    kind, _, identifier = profile_key.partition(":")
    return Subject(user_id=identifier) if kind == "u" else Subject(anonymous_id=identifier)


def session_lists_score(*, profile_keys: list[str]) -> int:
    """Score these profiles' lists with their sessions now and store them; delete the lists of
    those who have no session, or no personalization consent, or when no model serves. Returns
    how many lists were stored."""
    keys = [key for key in dict.fromkeys(profile_keys) if key[:2] in ("u:", "a:")]
    if not keys or not session_lists.enabled():
        return 0
    model = active_model()
    if model is None:
        session_lists.lists_forget(keys)
        return 0
    subjects = {key: _subject_of(key) for key in keys}
    # One MGET for the live profiles (a pointer to a merged profile costs one more), one for the
    # countries their requests ask with, where a widget passes one (``session_lists.country_note``).
    asked = dict(zip(keys, session_lists.countries_read(keys), strict=True))
    inputs = {}
    scored_from: dict[str, bytes | None] = {}
    for key, entry in zip(keys, live_mirror.mirror_read_raw(keys), strict=True):
        # The entry the list is scored from, if it is the profile's own (else the write checks less).
        scored_from[key] = entry if entry is not None and entry.startswith(live_mirror.ENTRY_PROFILE_PREFIX) else None
        subject = subjects[key]
        profile = live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id, mirror_entries=[entry])
        row, weights, country = scoring_inputs(model, subject, profile, asked[key])
        if weights:
            inputs[key] = (row, weights, country)
    # As training asks (personalization.training): a known person's country is their jurisdiction.
    jurisdictions = {subjects[key]: country for key, (_, _, country) in inputs.items() if country}
    # From the consent cache, as serving asks (the database only for people not in it).
    allowed = consent_allows_each([subjects[key] for key in inputs], "personalization", jurisdictions=jurisdictions)
    scored = {key: value for key, value in inputs.items() if subjects[key] in allowed}
    # No list for those not scored; without consent, no country noted either.
    refused = [key for key in inputs if key not in scored]
    session_lists.lists_forget([key for key in keys if key not in scored], countries_of=refused)
    stored = {}
    wanted = list(scored)
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        stored.update(_scored(model, {key: scored[key] for key in chunk}))
    return session_lists.lists_write(stored, scored_from)


def _scored(model: LoadedModel, inputs: dict[str, tuple[int, dict[int, float], str]]) -> dict[str, bytes]:
    """The stored lists of a batch of visitors, scored together."""
    empty = sp.csr_matrix((1, model.n_items))
    rows = [row for row, _, _ in inputs.values()]
    visitors = Visitors(
        rows=np.array(rows),
        history=sp.vstack([one_row(model.history, row) if row >= 0 else empty for row in rows]).tocsr(),
        session=sp.vstack([session_matrix(model, weights) for _, weights, _ in inputs.values()]).tocsr(),
        countries=[country for _, _, country in inputs.values()],
    )
    best = model.hybrid.best(visitors, settings.PZ_SESSION_LIST_ITEMS)
    return {
        key: session_lists.entry_of(
            session_fingerprint(model, row, weights, country), model.version_id, best.one(index)
        )
        for index, (key, (row, weights, country)) in enumerate(inputs.items())
    }


def session_lists_renew(model: LoadedModel) -> int:
    """Once per model (version and revision): note every visitor who has a stored list for scoring
    again, as if their session had changed. Each list was scored with an earlier model, so none
    matches now, and until their next view each of them would be scored live on every request.
    Only the first process to see this model does it; returns how many it noted."""
    if not session_lists.enabled() or not session_lists.model_note(model.version_id, model.revision):
        return 0
    noted = 0
    for keys in session_lists.listed_keys():
        live_mirror.sessions_mark(keys)
        noted += len(keys)
    return noted


def session_lists_score_changed(*, batch: int = 256) -> int:
    """Score the profiles whose sessions changed since last asked (up to ``batch`` of them);
    returns how many were taken (0: none waiting)."""
    keys = live_mirror.sessions_take(batch)
    if keys:
        session_lists_score(profile_keys=keys)
    return len(keys)
