"""System checks of the images app's settings (``manage.py check``): their shape only."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .conf import DEFAULT_MAX_PIXELS, DEFAULT_THUMBNAIL_SIZES, parse_max_pixels, parse_thumbnail_sizes


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``IMAGES_THUMBNAIL_SIZES`` (images.E001) and ``IMAGES_MAX_PIXELS`` (images.E002)."""
    errors: list[checks.CheckMessage] = []
    try:
        parse_thumbnail_sizes(getattr(settings, "IMAGES_THUMBNAIL_SIZES", DEFAULT_THUMBNAIL_SIZES))
    except ValueError as e:
        errors.append(checks.Error(str(e), hint='e.g. IMAGES_THUMBNAIL_SIZES = {"small": [150, 150]}',
                                   id="images.E001"))
    try:
        parse_max_pixels(getattr(settings, "IMAGES_MAX_PIXELS", DEFAULT_MAX_PIXELS))
    except ValueError as e:
        errors.append(checks.Error(str(e), hint="e.g. IMAGES_MAX_PIXELS = 50_000_000", id="images.E002"))
    return errors
