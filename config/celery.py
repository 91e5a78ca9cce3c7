"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pz")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _say_if_redis_may_lose_events(**kwargs: Any) -> None:
    from config.redis_persistence import redis_persistence_log

    redis_persistence_log(process="celery worker")
