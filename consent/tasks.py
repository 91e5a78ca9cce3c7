"""Celery tasks of the consent app: thin, safe to run twice, ids in and nothing out."""

from uuid import UUID

from celery import shared_task

from consent import services


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3, soft_time_limit=240, time_limit=300
)
def subject_export_build(export_id: str) -> None:
    """Build a requested data export (a built one is left as it is)."""
    services.export_build(export_id=UUID(export_id))


@shared_task(acks_late=True, soft_time_limit=3300, time_limit=3600)
def retention_purge() -> dict[str, dict[str, int]]:
    """Nightly (see the schedule in the admin's Periodic tasks): purge data past its retention."""
    return services.retention_purge()
