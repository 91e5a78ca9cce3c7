from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Catalog and personalization"

    def ready(self) -> None:
        from consent.registry import register_personal_data
        from personalization import exposure_privacy, model_privacy, privacy, session_lists

        register_personal_data(
            "demo shop", export=privacy.subject_export, erase=privacy.subject_erase, purge=privacy.purge
        )
        register_personal_data(
            "recommendation models", export=model_privacy.subject_export, erase=model_privacy.subject_erase
        )
        register_personal_data(
            "recommendation exposures", export=exposure_privacy.subject_export, erase=exposure_privacy.subject_erase
        )
        register_personal_data(
            "session recommendation lists", export=session_lists.subject_export, erase=session_lists.subject_erase
        )
