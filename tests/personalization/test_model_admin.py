"""The merchandiser's side of model versions: see them, train now, roll back."""

import logging
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from consent.selectors import subject_hash
from personalization.model_store import active_model, forget_loaded_model
from personalization.models import ModelVersion
from tests.personalization.history import FAST, build_shop, train

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_versions_show_their_holdout_metrics_and_timings(admin_client: Client, commit: Callable) -> None:
    build_shop(3)
    version = train(commit)
    listing = admin_client.get("/admin/personalization/modelversion/")
    assert listing.status_code == 200
    assert b"Train now" in listing.content and f"{version.score:.4f}".encode() in listing.content
    page = admin_client.get(f"/admin/personalization/modelversion/{version.pk}/change/")
    assert page.status_code == 200
    for text in (b"hold-out metrics at 10", b"new-items", b"holdout fit: lightfm", b"next basket lines"):
        assert text in page.content.lower()
    assert admin_client.get("/admin/personalization/modelversion/add/").status_code == 403
    assert admin_client.get("/admin/personalization/tunedparameters/").status_code == 200


def test_train_now_starts_a_training(
    admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks, settings
) -> None:
    build_shop(2)
    settings.PZ_RECOMMENDER_PARAMS = FAST
    assert admin_client.get("/admin/personalization/modelversion/train/").status_code == 403  # POST only
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/personalization/modelversion/train/")
    assert response.status_code == 302
    version = ModelVersion.objects.get()
    assert (version.status, version.trigger) == ("active", "admin: admin")


def test_train_now_is_for_staff_who_may_change_versions(client: Client) -> None:
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.post("/admin/personalization/modelversion/train/").status_code == 403
    assert not ModelVersion.objects.exists()


def test_rolling_back_from_the_admin(admin_client: Client, commit: Callable, settings) -> None:
    build_shop(3)
    first = train(commit)
    settings.PZ_MODEL_ACTIVATION_TOLERANCE = -1.0
    second = train(commit)
    assert second.status == "rejected"
    response = admin_client.post(
        "/admin/personalization/modelversion/",
        {"action": "activate", "_selected_action": [second.pk]},
        follow=True,
    )
    assert f"Version {second.pk} is active" in response.content.decode()
    assert dict(ModelVersion.objects.values_list("pk", "status")) == {first.pk: "ready", second.pk: "active"}
    both = admin_client.post(
        "/admin/personalization/modelversion/",
        {"action": "activate", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Select exactly one version" in both.content.decode()


def test_a_version_trained_with_another_privacy_hash_key_is_flagged(
    admin_client: Client, commit: Callable, settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Models know people by hashes keyed with PZ_PRIVACY_HASH_KEY: after a change of the key the
    active version knows nobody, which the admin and the serving log say (it used to be silent)."""
    build_shop(3)
    version = train(commit)
    listing, page = "/admin/personalization/modelversion/", f"/admin/personalization/modelversion/{version.pk}/change/"
    assert b"another PZ_PRIVACY_HASH_KEY" not in admin_client.get(listing).content
    known = active_model()
    assert known is not None and known.user_row([subject_hash("user", "k0")]) >= 0
    settings.PZ_PRIVACY_HASH_KEY = "a-key-set-since-the-training-0000000000000000000000"
    for url in (listing, page):
        content = admin_client.get(url).content.decode()
        assert f"Version {version.pk} was trained with another PZ_PRIVACY_HASH_KEY" in content, url
        assert "It serves now: every customer gets the non-personalized cold-start list" in content
    forget_loaded_model()
    with caplog.at_level(logging.WARNING, logger="personalization.model_store"):
        model = active_model()
    assert model is not None and f"model version {version.pk} was trained with another" in caplog.text
    assert model.user_row([subject_hash("user", "k0")]) == -1  # known at training, unknown now
