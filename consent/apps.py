from django.apps import AppConfig


class ConsentConfig(AppConfig):
    """Consent purposes, proof of consent, the preference center, export and erasure."""

    name = "consent"
    verbose_name = "Consent and privacy"

    def ready(self) -> None:
        from consent import privacy
        from consent.registry import register_personal_data

        register_personal_data(
            "consent", export=privacy.subject_export, erase=privacy.subject_erase, purge=privacy.purge
        )
