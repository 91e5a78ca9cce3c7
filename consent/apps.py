from django.apps import AppConfig


class ConsentConfig(AppConfig):
    """Consent purposes, proof of consent and the preference center (see the Consent issue)."""

    name = "consent"
    verbose_name = "Consent and privacy"
