from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """A/B tests and their statistics (see the Experiments issue)."""

    name = "experiments"
    verbose_name = "Experiments"
