"""A data export built by a real Celery worker, over the Redis broker (PostgreSQL + Redis only)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config import celery_app
from consent.models import ExportRequest
from consent.services import consent_record, export_request_create
from consent.subjects import Subject

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker() -> object:
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.fail("This test needs PostgreSQL and Redis (it runs in `make pytest`, not in the embedded run).")
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_export_is_built_by_a_worker_through_the_broker(
    worker: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    consent_record(subject=Subject(user_id="worker-user"), choices={"analytics": True}, source="banner")
    export = export_request_create(subject=Subject(user_id="worker-user"), requested_via="test")
    assert ExportRequest.objects.get(pk=export.pk).status == "pending"  # queued, not built in this process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ExportRequest.objects.get(pk=export.pk).status == "pending":
        assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else "the worker stopped"
        time.sleep(0.2)
    built = ExportRequest.objects.get(pk=export.pk)
    assert built.status == "ready"
    assert built.size_bytes > 0
