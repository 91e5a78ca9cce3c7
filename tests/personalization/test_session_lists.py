"""Lists scored when a visitor's session changes (``personalization.session_lists``): served only
when scored from what the visitor is now, the same as live scoring, and never without consent.
They live in Redis: these tests need it (no embedded run)."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from consent.services import consent_record, subject_erase
from consent.subjects import Identities, Subject
from personalization import session_lists
from personalization.model_store import LoadedModel, active_model, forget_loaded_model
from personalization.models import Product
from personalization.recommendations import (
    Context,
    Ranked,
    Visit,
    _session_listed,
    rank_for_visitor,
    scoring_inputs,
)
from personalization.services.model_versions import model_version_train
from personalization.services.session_lists import (
    session_lists_renew,
    session_lists_score,
    session_lists_score_changed,
)
from tests.conftest import ROOT
from tests.outages import RedisServer, wait_until
from tests.personalization.history import FAST, KITCHEN, build_shop, train
from tests.personalization.test_recommendations import view
from tracking import live_mirror
from tracking.selectors import live_profile

pytestmark = pytest.mark.django_db
Commit = Callable

BROWSERS = {  # profile key: (the subject, what they view)
    "u:k1": (Subject(user_id="k1"), ("G3", "G4", "G3")),
    "u:g2": (Subject(user_id="g2"), ("K2",)),
    "a:browser-7": (Subject(anonymous_id="browser-7"), ("G1", "G2", "K5")),
}


@pytest.fixture
def browsing(commit: Commit, client: Client, drain: Callable[[], int]) -> LoadedModel:
    build_shop(6)
    train(commit)
    for subject, products in BROWSERS.values():
        commit(
            lambda subject=subject: consent_record(
                subject=subject, choices={"analytics": True, "personalization": True}, source="banner"
            )
        )
        anonymous_id = subject.anonymous_id or f"{subject.user_id}-browser"
        view(client, drain, anonymous_id, *products, user_id=subject.user_id)
    model = active_model()
    assert model is not None
    return model


def visit(subject: Subject, *, lists: bool) -> Visit:
    keys = live_mirror.profile_keys(subject.user_id, subject.anonymous_id)
    profile = live_profile(user_id=subject.user_id, anonymous_id=subject.anonymous_id)
    return Visit(True, profile, session_lists.lists_read(keys) if lists else ())


def listed(model: LoadedModel, subject: Subject, context: Context, k: int) -> Ranked | None:
    given = visit(subject, lists=True)
    row, weights, country = scoring_inputs(model, subject, given.profile, context.country)
    return _session_listed(model, context, k, row, weights, country, given)


def test_the_consumer_notes_whose_session_changed(browsing: LoadedModel) -> None:
    assert sorted(live_mirror.sessions_take(100)) == sorted(BROWSERS)
    assert live_mirror.sessions_take(100) == []  # taken once


def test_a_list_scored_ahead_is_what_live_scoring_gives(browsing: LoadedModel) -> None:
    model = browsing
    assert session_lists_score_changed(batch=2) == 2  # two at a time, as the command takes them
    assert session_lists_score_changed(batch=2) == 1
    assert session_lists_score_changed(batch=2) == 0
    Product.objects.filter(sku="G1").update(in_stock=False)
    contexts = [
        Context(),
        Context(category="Garden"),
        Context(product="K2"),
        Context(exclude=frozenset({"G4", "K1"})),
        Context(in_stock_only=False),
    ]
    for key, (subject, _) in BROWSERS.items():
        for context in contexts:
            assert listed(model, subject, context, 6) is not None, (key, context)
            ahead = rank_for_visitor(subject, context, 6, visit=visit(subject, lists=True))
            live = rank_for_visitor(subject, context, 6, visit=visit(subject, lists=False))
            assert ahead.personalized and ahead.signals == live.signals and "session" in ahead.signals
            assert ahead.rows == live.rows, (key, context)
            assert ahead.scores == pytest.approx(live.scores, rel=1e-6)  # summed as a batch, in another order
            assert [r["share"] for r in ahead.reasons] == [r["share"] for r in live.reasons]


def test_a_list_is_not_served_once_the_session_has_moved_on(
    browsing: LoadedModel, client: Client, drain: Callable[[], int]
) -> None:
    model = browsing
    assert session_lists_score_changed() == 3
    subject = Subject(anonymous_id="browser-7")
    assert listed(model, subject, Context(), 5) is not None
    view(client, drain, "browser-7", "K1", "K3")  # not scored yet
    assert listed(model, subject, Context(), 5) is None
    moved_on = rank_for_visitor(subject, Context(), 5, visit=visit(subject, lists=True))
    assert moved_on.rows == rank_for_visitor(subject, Context(), 5, visit=visit(subject, lists=False)).rows
    assert session_lists_score_changed() == 1  # the view was noted: scored now
    assert listed(model, subject, Context(), 5) is not None


def test_a_list_too_short_for_the_filters_hands_over_to_live_scoring(browsing: LoadedModel, settings) -> None:
    settings.PZ_SESSION_LIST_ITEMS = 3
    model = browsing
    subject = Subject(user_id="g2")  # a garden customer who viewed a kitchen thing
    session_lists_score(profile_keys=["u:g2"])
    stored = session_lists.matching(session_lists.lists_read(["u:g2"]), b"")
    assert stored is None  # nothing matches an empty fingerprint
    assert listed(model, subject, Context(), 3) is not None
    assert listed(model, subject, Context(category="Kitchen"), 3) is None  # three garden things at most
    result = rank_for_visitor(subject, Context(category="Kitchen"), 3, visit=visit(subject, lists=True))
    assert result.personalized and len(result.rows) == 3 and {str(model.skus[r]) for r in result.rows} <= set(KITCHEN)


def test_no_list_is_kept_without_personalization_consent_or_a_session(
    browsing: LoadedModel, commit: Commit, client: Client, drain: Callable[[], int]
) -> None:
    session_lists_score(profile_keys=list(BROWSERS))
    assert all(session_lists.lists_read(list(BROWSERS)))
    commit(lambda: consent_record(subject=Subject(user_id="k1"), choices={"personalization": False}, source="api"))
    # a returning customer with no session yet is served their precomputed list: nothing to keep
    stored = session_lists_score(profile_keys=["u:k1", "u:g2", "u:k0"])
    assert stored == 1
    assert session_lists.lists_read(["u:k1", "u:g2", "u:k0"])[0] is None
    assert session_lists.lists_read(["u:g2"])[0] is not None
    assert session_lists.lists_read(["u:k0"])[0] is None


def test_a_list_from_another_model_version_or_revision_is_not_served(browsing: LoadedModel) -> None:
    session_lists_score(profile_keys=list(BROWSERS))
    subject = Subject(user_id="k1")
    assert listed(browsing, subject, Context(), 5) is not None
    newer = replace(browsing, version_id=browsing.version_id + 1)
    assert listed(newer, subject, Context(), 5) is None
    erased_since = replace(browsing, revision=browsing.revision + 1)  # an erasure rewrote the model
    assert listed(erased_since, subject, Context(), 5) is None


def test_the_command_scores_what_is_waiting(browsing: LoadedModel) -> None:
    out = StringIO()
    call_command("score_sessions", "--exit-when-idle", "--idle-ms", "1", stdout=out, stderr=out)
    assert "Stopped: 3 sessions scored." in out.getvalue()
    assert all(session_lists.lists_read(list(BROWSERS)))


def test_a_new_model_has_every_list_scored_again_once(browsing: LoadedModel, commit: Commit) -> None:
    assert session_lists_renew(browsing) == 0  # no list yet; this model is noted
    assert session_lists_score_changed() == 3
    assert session_lists_renew(browsing) == 0  # the same model: nothing to renew
    commit(lambda: model_version_train(trigger="test", params=FAST, activation="always"))
    forget_loaded_model()
    second = active_model()
    assert second is not None and second.version_id != browsing.version_id
    subject = Subject(user_id="k1")
    assert listed(second, subject, Context(), 5) is None  # scored with the first: no longer served
    assert session_lists_renew(second) == 3
    assert sorted(live_mirror.sessions_take(100)) == sorted(BROWSERS)
    assert session_lists_renew(second) == 0  # any other scorer that sees it later leaves it
    assert session_lists_renew(replace(second, revision=second.revision + 1)) == 3  # an erasure rewrote it


def test_the_command_renews_the_lists_when_the_model_changes(browsing: LoadedModel, commit: Commit) -> None:
    out = StringIO()
    call_command("score_sessions", "--exit-when-idle", "--idle-ms", "1", stdout=out, stderr=out)
    assert "Stopped: 3 sessions scored." in out.getvalue() and "to renew" not in out.getvalue()
    commit(lambda: model_version_train(trigger="test", params=FAST, activation="always"))
    forget_loaded_model()
    second = active_model()
    assert second is not None
    out = StringIO()
    call_command("score_sessions", "--exit-when-idle", "--idle-ms", "1", stdout=out, stderr=out)
    assert f"Model {second.version_id} (revision 0): 3 to renew." in out.getvalue()
    assert "Stopped: 3 sessions scored." in out.getvalue()
    for subject, _ in BROWSERS.values():
        assert listed(second, subject, Context(), 5) is not None


def test_the_lists_are_in_the_persons_export(browsing: LoadedModel) -> None:
    session_lists_score(profile_keys=list(BROWSERS))
    exported = session_lists.subject_export(
        Identities(user_ids=frozenset({"k1"}), anonymous_ids=frozenset({"browser-7"}))
    )
    lists = {entry["profile"]: entry for entry in exported["session_lists"]}
    assert set(lists) == {"u:k1", "a:browser-7"}
    assert lists["u:k1"]["model_version"] == browsing.version_id
    (entry,) = session_lists.lists_read(["u:k1"])
    assert entry is not None
    stored = session_lists.matching([entry], entry[: session_lists.FINGERPRINT_BYTES])
    assert stored is not None
    assert lists["u:k1"]["products"] == [str(browsing.skus[row]) for row in stored.rows]
    assert len(lists["u:k1"]["products"]) == browsing.n_items  # a small shop: every item is in the list


def test_an_erasure_while_a_batch_is_scored_leaves_no_list(
    browsing: LoadedModel, monkeypatch: pytest.MonkeyPatch, commit: Commit
) -> None:
    """The person is erased after their profile was read for scoring and before their list is
    stored: the list is not stored (the store checks that the mirror still holds the profile)."""
    from personalization.services import session_lists as scoring

    asked = scoring.consent_allows_each

    def erased_meanwhile(*args: Any, **kwargs: Any) -> set[Subject]:
        allowed = asked(*args, **kwargs)
        commit(lambda: subject_erase(subject=Subject(user_id="k1"), requested_via="test"))
        return allowed

    monkeypatch.setattr(scoring, "consent_allows_each", erased_meanwhile)
    assert session_lists_score(profile_keys=["u:k1", "a:browser-7"]) == 1
    assert session_lists.lists_read(["u:k1", "a:browser-7"])[0] is None
    assert session_lists.lists_read(["a:browser-7"])[0] is not None


def test_a_slower_scorer_does_not_put_back_an_older_list(
    browsing: LoadedModel, monkeypatch: pytest.MonkeyPatch, client: Client, drain: Callable[[], int]
) -> None:
    """Two scorers: one reads a visitor, who then views more; another scores them with that view
    and stores its list; the first one's list, scored from the visit before, arrives last. It is
    not stored over the newer one, and the visitor is noted to be scored again."""
    from personalization.services import session_lists as scoring

    model = browsing
    subject = Subject(anonymous_id="browser-7")
    live_mirror.sessions_take(100)
    asked = scoring.consent_allows_each
    overtaken: list[bool] = []

    def overtaken_meanwhile(*args: Any, **kwargs: Any) -> set[Subject]:
        allowed = asked(*args, **kwargs)
        if not overtaken:  # the other scorer, while this one scores the visit before
            overtaken.append(True)
            view(client, drain, "browser-7", "K1", "K3")
            assert session_lists_score(profile_keys=["a:browser-7"]) == 1
            assert live_mirror.sessions_take(100) == ["a:browser-7"]  # the view's note, taken
        return allowed

    monkeypatch.setattr(scoring, "consent_allows_each", overtaken_meanwhile)
    assert session_lists_score(profile_keys=["a:browser-7"]) == 0  # the slower one stores nothing
    newer = listed(model, subject, Context(), 5)
    assert newer is not None  # the list of the visit as it is now is the one stored
    assert newer.rows == rank_for_visitor(subject, Context(), 5, visit=visit(subject, lists=False)).rows
    assert live_mirror.sessions_take(100) == ["a:browser-7"]  # and it is scored again, to be sure


def test_a_list_scored_for_the_country_asked_with_matches_it(browsing: LoadedModel) -> None:
    """A widget that passes a country (data-pz-country) asks with it; a list scored for the
    visitor's own country (none, for a browser) would never match. Once noted, the visitor's
    lists are scored for it, and match such requests; the note is exported and erased."""
    model = browsing
    subject = Subject(anonymous_id="browser-7")
    german = Context(country="DE")
    assert session_lists_score_changed() == 3
    assert listed(model, subject, Context(), 5) is not None
    assert listed(model, subject, german, 5) is None  # scored for no country
    session_lists.country_note("a:browser-7", "DE")
    assert session_lists_score_changed() == 1  # noted to be scored again, for DE
    ahead = listed(model, subject, german, 5)
    assert ahead is not None and "country" in (ahead.signals or [])
    live = rank_for_visitor(subject, german, 5, visit=visit(subject, lists=False))
    assert ahead.rows == live.rows
    identities = Identities(user_ids=frozenset(), anonymous_ids=frozenset({"browser-7"}))
    exported = session_lists.subject_export(identities)
    assert exported["session_list_countries"] == [{"profile": "a:browser-7", "country": "DE"}]
    assert session_lists.subject_erase(identities) == {
        "session lists deleted": 1,
        "session list countries deleted": 1,
    }
    assert session_lists.countries_read(["a:browser-7"]) == [""]


def test_without_consent_the_country_noted_goes_with_the_list(
    browsing: LoadedModel, commit: Commit, client: Client, drain: Callable[[], int]
) -> None:
    session_lists.country_note("a:browser-7", "DE")
    assert session_lists_score_changed() == 3
    commit(
        lambda: consent_record(
            subject=Subject(anonymous_id="browser-7"), choices={"personalization": False}, source="banner"
        )
    )
    session_lists_score(profile_keys=["a:browser-7"])
    assert session_lists.lists_read(["a:browser-7"]) == [None]
    assert session_lists.countries_read(["a:browser-7"]) == [""]


def test_the_command_rides_out_a_redis_restart_saying_so_once(private_redis: RedisServer, tmp_path: Path) -> None:
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": private_redis.url,
    }
    log = tmp_path / "score_sessions.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "score_sessions"], cwd=ROOT, env=environment, stdout=output, stderr=output
        )
    try:
        wait_until(lambda: "Scoring visitors' lists" in log.read_text(), timeout=60)
        private_redis.stop()
        wait_until(lambda: "a store is unreachable" in log.read_text(), timeout=30)
        private_redis.start()
        wait_until(lambda: "the stores answer again" in log.read_text(), timeout=30)
        assert process.poll() is None  # still running
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    text = log.read_text()
    assert (text.count("a store is unreachable"), text.count("the stores answer again"), text.count("Traceback")) == (
        1,
        1,
        0,
    )
    assert "Stopped: 0 sessions scored." in text
