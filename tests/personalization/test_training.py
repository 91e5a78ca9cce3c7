"""The training set (consent decides who is in it) and model versions (activation, rollback)."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command

from consent.selectors import subject_hash
from consent.services import consent_record, subject_erase, subject_link
from consent.subjects import Subject
from personalization import model_store, training
from personalization.models import ModelVersion
from personalization.recommenders.base import ADD, PURCHASE, VIEW
from personalization.services import ModelVersionError, model_version_activate
from personalization.tasks import TRAINING_LOCK, models_train
from personalization.training import dataset_build, effective_params
from tests.personalization.history import FAST, build_shop, train
from tracking.services import source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def people_in(dataset) -> set[str]:
    return set(dataset.subjects)


def test_the_training_set_holds_every_consented_persons_orders_and_no_guests() -> None:
    users = build_shop(4)
    dataset = dataset_build()
    assert people_in(dataset) == {f"u:{u}" for u in users}
    assert dataset.counts["purchases"] == 8 * 3 * 2  # eight customers, three orders of two lines
    assert dataset.counts["guest_interactions"] == 2
    assert dataset.counts["items"] == 11
    data = dataset.data
    assert set(np.unique(data.interactions.kinds).tolist()) == {PURCHASE}
    k0 = dataset.subjects.index("u:k0")
    assert data.user_countries[k0] == "FR"
    bought = {dataset.skus[i] for i in data.interactions.items[data.interactions.users == k0]}
    assert bought == {"K1", "K2", "K3", "K4"}


def test_without_personalization_consent_a_person_is_left_out(commit: Callable) -> None:
    build_shop(2, consent=False)
    assert dataset_build().counts["people"] == 0  # opt-in: nobody chose, nobody is in
    commit(lambda: consent_record(subject=Subject(user_id="k0"), choices={"personalization": True}, source="api"))
    commit(lambda: consent_record(subject=Subject(user_id="g0"), choices={"personalization": True}, source="api"))
    commit(lambda: consent_record(subject=Subject(user_id="g0"), choices={"personalization": False}, source="api"))
    dataset = dataset_build()
    assert people_in(dataset) == {"u:k0"}
    assert dataset.counts["people_without_consent"] == 3
    assert dataset.counts["interactions_without_consent"] == 3 * 3 * 2
    commit(lambda: subject_erase(subject=Subject(user_id="k0"), requested_via="test"))
    assert people_in(dataset_build()) == set()  # an erased person never comes back


def test_events_join_the_person_their_browser_was_linked_to(client, drain, commit) -> None:
    build_shop(1)
    keys = source_create(name="Shop")
    commit(
        lambda: consent_record(subject=Subject(anonymous_id="browser-1"), choices={"analytics": True}, source="banner")
    )
    commit(lambda: subject_link(anonymous_id="browser-1", user_id="k0", source="login"))
    commit(
        lambda: consent_record(
            subject=Subject(anonymous_id="browser-2"),
            choices={"analytics": True, "personalization": True},
            source="banner",
        )
    )

    def event(name: str, anonymous_id: str, message_id: str, product: dict[str, str]) -> dict[str, object]:
        return {
            "type": "track",
            "event": name,
            "anonymousId": anonymous_id,
            "messageId": message_id,
            "properties": product,
        }

    events = [
        event("Product Viewed", "browser-1", "v1", {"product_id": "G5"}),
        event("Product Added", "browser-1", "a1", {"product_id": "G5"}),
        event("Product Viewed", "browser-2", "v2", {"product_id": "K5"}),
        event("Product Viewed", "browser-2", "v3", {"sku": "NOT-IN-CATALOG"}),
    ]
    response = client.post("/v1/batch", {"batch": events, "writeKey": keys.write_key}, content_type="application/json")
    assert response.json()["accepted"] == 4
    drain()
    dataset = dataset_build()
    assert dataset.counts["views"] == 2 and dataset.counts["adds"] == 1
    interactions = dataset.data.interactions
    k0 = dataset.subjects.index("u:k0")
    mine = interactions.users == k0
    g5 = dataset.skus.index("G5")
    assert sorted(interactions.kinds[mine & (interactions.items == g5)].tolist()) == [VIEW, ADD]
    assert "a:browser-2" in dataset.subjects  # an anonymous visitor who allowed personalization
    sessions = interactions.baskets[interactions.kinds != PURCHASE]
    assert (sessions > interactions.baskets[interactions.kinds == PURCHASE].max()).all()  # no clash with orders


def test_a_training_records_a_version_and_serves_it(settings, commit) -> None:
    build_shop(6)
    version = train(commit)
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.activated_by == "test"
    assert version.counts["people"] == 12 and version.counts["holdout_people"] == 12
    assert set(version.metrics) >= {"hybrid", "ease", "lightfm", "buy_again", "trending", "session"}
    assert set(version.metrics["hybrid"]) == {"new-items", "repeat"}
    assert version.score is not None and 0 < version.score <= 1
    assert {"data", "lightfm", "holdout fit: lightfm", "write artifacts", "total"} <= set(version.timings)
    directory = Path(version.artifact_path)
    assert (
        directory.parent == settings.PZ_MODEL_DIR
        and (directory / "model" / "lightfm" / "item_embeddings.npy").is_file()
    )
    assert version.params["lightfm"]["epochs"] == FAST["lightfm"]["epochs"]
    loaded = model_store.active_model()
    assert loaded is not None and loaded.version_id == version.pk
    # the files name nobody: people are keyed hashes
    for path in directory.rglob("*.npy"):
        assert b"k0" not in path.read_bytes().replace(b"K", b"")  # SKUs are K1… (upper case)


def test_a_worse_version_is_rejected_and_an_older_one_can_be_rolled_back_to(settings, commit) -> None:
    build_shop(6)
    first = train(commit)
    settings.PZ_MODEL_ACTIVATION_TOLERANCE = -1.0  # now a new version must score twice as well
    second = train(commit)
    assert second.status == ModelVersion.Status.REJECTED
    assert ModelVersion.objects.get(pk=first.pk).status == ModelVersion.Status.ACTIVE
    rolled = commit(lambda: model_version_activate(version=second, by="admin: test"))  # the merchandiser's choice
    assert rolled.status == ModelVersion.Status.ACTIVE
    assert ModelVersion.objects.get(pk=first.pk).status == ModelVersion.Status.READY
    model_store.forget_loaded_model()
    assert model_store.active_model().version_id == second.pk  # type: ignore[union-attr]
    commit(lambda: model_version_activate(version=first, by="admin: test"))
    model_store.forget_loaded_model()
    assert model_store.active_model().version_id == first.pk  # type: ignore[union-attr]


def test_old_artifacts_are_pruned_but_never_the_active_ones(settings, commit) -> None:
    build_shop(3)
    settings.PZ_MODEL_KEEP = 1
    first = train(commit)
    settings.PZ_MODEL_ACTIVATION_TOLERANCE = -1.0
    second, third = train(commit), train(commit)
    states = dict(ModelVersion.objects.values_list("pk", "status"))
    assert states == {first.pk: "active", second.pk: "discarded", third.pk: "rejected"}
    assert Path(first.artifact_path).is_dir() and not Path(second.artifact_path).exists()
    with pytest.raises(ModelVersionError, match="cannot serve"):
        model_version_activate(version=ModelVersion.objects.get(pk=second.pk), by="test")


def test_a_failed_training_is_recorded(commit) -> None:
    build_shop(2)
    with pytest.raises(ValueError, match="unknown parameters"):
        train(commit, ease={"no_such_parameter": 1})
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.FAILED
    assert "no_such_parameter" in version.error


def test_the_task_trains_once_at_a_time(settings) -> None:
    from django.core.cache import cache

    build_shop(2)
    cache.add(TRAINING_LOCK, "someone else", timeout=60)
    assert models_train.delay(trigger="schedule", params=FAST).get() is None
    assert not ModelVersion.objects.exists()
    cache.delete(TRAINING_LOCK)
    version_id = models_train.delay(trigger="schedule", params=FAST).get()
    assert version_id is not None and ModelVersion.objects.get(pk=version_id).trigger == "schedule"
    assert cache.get(TRAINING_LOCK) is None


def test_parameters_come_from_defaults_settings_tuning_and_the_caller(settings) -> None:
    from personalization.models import TunedParameters

    settings.PZ_RECOMMENDER_PARAMS = {"ease": {"l2": 9.0}, "holdout_days": 7}
    TunedParameters.objects.create(params={"ease": {"half_life_days": 30.0}, "trending": {"half_life_days": 3.0}})
    params = effective_params({"trending": {"country_weight": 0.0}})
    assert params["ease"]["l2"] == 9.0 and params["ease"]["half_life_days"] == 30.0
    assert params["trending"] == {"half_life_days": 3.0, "country_weight": 0.0, "min_country_users": 20}
    assert params["holdout_days"] == 7


def test_train_models_prints_each_part_and_the_holdout(capsys) -> None:
    build_shop(4)
    call_command("train_models", "--params", json.dumps(FAST))
    out = capsys.readouterr().out
    assert "Model version" in out and "16 interactions" not in out
    assert "8 people, 11 items, 48 interactions (48 purchases, 0 views, 0 adds to cart)" in out
    assert "holdout fit: lightfm" in out and "next basket lines" in out
    assert "is active (serving)" in out


def test_a_person_erased_while_a_version_trains_is_not_in_it(commit: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    """The erasure commits after the training read its data and before the version is ready, so
    the erasure itself cannot reach the new files: the training takes the person out of them."""
    users = build_shop()
    read = training.dataset_build

    def read_then_erase(**arguments: Any) -> Any:
        dataset = read(**arguments)
        subject_erase(subject=Subject(user_id=users[0]), requested_via="test")
        return dataset

    monkeypatch.setattr(training, "dataset_build", read_then_erase)
    version = train(commit)
    assert version.counts["people"] == len(users)  # the person was in the data read
    directory = Path(version.artifact_path)
    assert model_store.artifacts_export(directory, [subject_hash("user", users[0])]) is None
    assert model_store.artifacts_export(directory, [subject_hash("user", users[1])]) is not None
