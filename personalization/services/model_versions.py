"""Writes of model versions: training, activation (and rollback), pruning, erasure."""

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from consent.suppression import suppressed_hashes
from personalization import model_store, selectors, training
from personalization.models import ModelVersion
from personalization.selectors import model_version_active


class ModelVersionError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def model_version_train(
    *, trigger: str, params: Mapping[str, Any] | None = None, activation: str = "auto"
) -> ModelVersion:
    """Fit every recommender on the stored interactions, judge them on the hold-out window, refit
    on everything, write the artifacts and record the version.

    ``activation``: "auto" activates it when it is not worse on the hold-out than the active
    version (within ``PZ_MODEL_ACTIVATION_TOLERANCE``); "always" and "never" do as they say.
    A failure is recorded on the version (status failed, with the error) and raised.
    """
    effective = training.effective_params(params)
    version = ModelVersion.objects.create(status=ModelVersion.Status.TRAINING, trigger=trigger, params=effective)
    try:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        dataset = training.dataset_build(kind_weights=effective["kind_weights"])
        timings["data"] = round(time.perf_counter() - started, 3)

        step = time.perf_counter()
        holdout = training.holdout_window(dataset, effective)
        on_train = training.fit_all(holdout.train, effective)
        timings.update({f"holdout fit: {name}": seconds for name, seconds in on_train.timings.items()})
        metrics = training.holdout_metrics(on_train, holdout)
        timings["holdout evaluation"] = round(time.perf_counter() - step - sum(on_train.timings.values()), 3)

        fitted = training.fit_all(dataset.data, effective)
        timings.update(fitted.timings)
        step = time.perf_counter()
        directory = model_store.version_directory(version.pk)
        history = dataset.data.user_items(float(effective["history_half_life_days"]))
        model_store.artifacts_write(directory, dataset, fitted.hybrid, history)
        timings["write artifacts"] = round(time.perf_counter() - step, 3)
        timings["total"] = round(time.perf_counter() - started, 3)

        interactions = dataset.data.interactions
        version.data_since = _moment(float(interactions.times.min())) if len(interactions) else None
        version.data_until = _moment(dataset.data.as_of)
        version.holdout_since = _moment(holdout.train.as_of)
        version.counts = {**dataset.counts, "skipped": fitted.skipped, "holdout_people": len(holdout.users)}
        version.metrics, version.score = metrics, training.holdout_score(metrics)
        version.timings, version.artifact_path = timings, str(directory)
        version.status, version.finished_at = ModelVersion.Status.READY, timezone.now()
        with transaction.atomic():
            # Someone erased while this version trained may be in the data read at the start, and
            # the erasure reaches only versions already ready: take the erased out of these files
            # before this one is, under the lock that orders erasures with writers.
            if erased := suppressed_hashes():
                model_store.artifacts_forget(directory, erased)
            version.save()
    except Exception as exc:
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        raise
    if activation == "always" or (activation == "auto" and _not_worse(version)):
        version = model_version_activate(version=version, by=trigger)
    elif activation == "auto":
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.REJECTED)
        version.status = ModelVersion.Status.REJECTED
    model_versions_prune()
    return version


def _moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def _not_worse(candidate: ModelVersion) -> bool:
    active = model_version_active()
    if active is None or active.score is None:
        return True
    if candidate.score is None:
        return False
    return bool(candidate.score >= (1.0 - float(settings.PZ_MODEL_ACTIVATION_TOLERANCE)) * active.score)


@transaction.atomic
def model_version_activate(*, version: ModelVersion, by: str) -> ModelVersion:
    """Make a version the one serving answers from (a rollback is the activation of an older one).
    Serving processes pick it up within ``PZ_MODEL_CHECK_SECONDS`` of the commit."""
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if locked.status == ModelVersion.Status.ACTIVE:
        return locked
    if locked.status not in (ModelVersion.Status.READY, ModelVersion.Status.REJECTED):
        raise ModelVersionError(f"Version {locked.pk} is {locked.get_status_display().lower()}: it cannot serve.")
    if not Path(locked.artifact_path).is_dir():
        raise ModelVersionError(f"The artifacts of version {locked.pk} are missing from {locked.artifact_path}.")
    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(status=ModelVersion.Status.READY)
    locked.status, locked.activated_at, locked.activated_by = ModelVersion.Status.ACTIVE, timezone.now(), by
    locked.save(update_fields=["status", "activated_at", "activated_by"])
    pointer = (locked.pk, locked.revision)
    transaction.on_commit(lambda: model_store.active_pointer_refresh(pointer))
    return locked


def model_versions_prune() -> list[int]:
    """Remove the artifacts of all but the newest ``PZ_MODEL_KEEP`` versions (never the active one)."""
    removed = []
    kept = 0
    for version in selectors.model_versions_on_disk().order_by("-created_at", "-id"):
        if version.status == ModelVersion.Status.ACTIVE or kept < settings.PZ_MODEL_KEEP:
            kept += version.status != ModelVersion.Status.ACTIVE
            continue
        model_store.artifacts_remove(Path(version.artifact_path))
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.DISCARDED)
        removed.append(version.pk)
    return removed


def model_versions_forget(*, subject_hashes: list[str]) -> int:
    """Erase people from every version's artifacts; serving processes reload what changed."""
    forgotten = 0
    for version in selectors.model_versions_on_disk():
        directory = Path(version.artifact_path)
        if not directory.is_dir():
            continue
        removed = model_store.artifacts_forget(directory, subject_hashes)
        if removed:
            forgotten += removed
            ModelVersion.objects.filter(pk=version.pk).update(revision=F("revision") + 1)
            if version.status == ModelVersion.Status.ACTIVE:
                pointer = (version.pk, version.revision + 1)
                transaction.on_commit(lambda pointer=pointer: model_store.active_pointer_refresh(pointer))  # type: ignore[misc]
    return forgotten
