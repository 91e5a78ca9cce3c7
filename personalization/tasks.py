"""Celery tasks of the personalization app: thin, ids and JSON in."""

from typing import Any

from celery import shared_task
from django.core.cache import cache

from personalization import services

TRAINING_LOCK = "personalization:training"


@shared_task(acks_late=True, soft_time_limit=3300, time_limit=3600)
def models_train(trigger: str = "schedule", params: dict[str, Any] | None = None) -> int | None:
    """Train every recommender (nightly, and "Train now" in the admin). One training at a time:
    a second one started meanwhile returns at once (None) instead of doing the same work twice."""
    if not cache.add(TRAINING_LOCK, trigger, timeout=3600):
        return None
    try:
        return services.model_version_train(trigger=trigger, params=params).pk
    finally:
        cache.delete(TRAINING_LOCK)
