"""The four purposes every part of the platform asks about, and a first policy version.

The shop edits the texts (and its own policy URL) in the admin; the keys are stable.
"""

from django.db import migrations
from django.utils import timezone

PURPOSES = [
    (
        "necessary",
        "Strictly necessary",
        "Keeps the shop working: your cart, checkout and security. Always on.",
        "contract",
        True,
    ),
    (
        "analytics",
        "Analytics",
        "Counts visits and measures how the shop is used, so that it can be improved.",
        "consent",
        False,
    ),
    (
        "personalization",
        "Personalization",
        "Uses what you view and buy to recommend products that suit you.",
        "consent",
        False,
    ),
    (
        "marketing",
        "Marketing",
        "Sends you e-mails and other messages about products and offers.",
        "consent",
        False,
    ),
]


def create(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    PolicyVersion = apps.get_model("consent", "PolicyVersion")
    purposes = [
        Purpose.objects.update_or_create(
            key=key,
            defaults={"name": name, "description": text, "legal_basis": basis, "is_required": required, "position": n},
        )[0]
        for n, (key, name, text, basis, required) in enumerate(PURPOSES)
    ]
    if not PolicyVersion.objects.exists():
        policy = PolicyVersion.objects.create(
            version=1,
            title="Privacy policy",
            text="How this shop uses personal data, for each purpose listed. Replace with the shop's own policy.",
            published_at=timezone.now(),
        )
        policy.purposes.set(purposes)


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_append_only_records")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
