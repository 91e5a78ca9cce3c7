"""Schedule the nightly training of the recommenders (django-celery-beat; editable in the admin's Periodic tasks)."""

from django.db import migrations

TASK = "personalization.tasks.models_train"


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name="Train the recommenders",
        defaults={
            "task": TASK,
            "crontab": crontab,
            "kwargs": '{"trigger": "schedule"}',
            "description": "Fits every recommender on the latest interactions; the new version serves if it is "
            "not worse on the hold-out than the active one.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("personalization", "0002_model_versions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
