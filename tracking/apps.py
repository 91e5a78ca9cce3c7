from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking: sources, customers and orders"

    def ready(self) -> None:
        from config.health import redis_figure_register
        from consent.registry import register_personal_data
        from tracking import dead_letters, privacy

        register_personal_data(
            "tracking", export=privacy.subject_export, erase=privacy.subject_erase, purge=privacy.purge
        )
        register_personal_data(
            "event dead letters", export=dead_letters.subject_export, erase=dead_letters.subject_erase
        )
        redis_figure_register("dead_letters", dead_letters.dead_letters_count)
