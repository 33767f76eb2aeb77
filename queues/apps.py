from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = "Queues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register checks and signal handlers, import every app's ``jobs`` module, read the settings.

        No Redis and no database here: the connection is built on first use.
        """
        from . import checks, signals  # noqa: F401
        from .conf import get_config
        from .lifecycle import disable_rq_started_cleanup

        disable_rq_started_cleanup()
        autodiscover_modules("jobs")
        get_config()
