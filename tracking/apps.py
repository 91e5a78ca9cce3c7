from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking: sources, customers and orders"

    def ready(self) -> None:
        from consent.registry import register_personal_data
        from tracking import privacy

        register_personal_data(
            "tracking", export=privacy.subject_export, erase=privacy.subject_erase, purge=privacy.purge
        )
