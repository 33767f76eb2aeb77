"""Imports (issue 14): CSV user imports uploaded in the admin, run by the ``imports.users`` job."""
from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the settings checks
