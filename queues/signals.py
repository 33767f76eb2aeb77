"""Signal receivers: keep cached settings and connections in step with ``override_settings``."""

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from . import conf, connection

WATCHED = {"QUEUES", "QUEUES_REDIS", "QUEUES_MAX_PAYLOAD_BYTES", "QUEUES_SHUTDOWN_GRACE"}


@receiver(setting_changed)
def reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in WATCHED:
        conf.clear_cache()
    if setting == "QUEUES_REDIS":
        connection.reset_connections()
