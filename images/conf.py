"""The images app's settings, read here only, at call time (``override_settings`` reaches them all).

- ``IMAGES_THUMBNAIL_SIZES``: ``{"<size name>": [max width, max height], ...}`` (default ``{"small": [150, 150],
  "medium": [600, 600]}``). Each thumbnail fits inside its box with the original's aspect ratio, never larger
  than the original. Names go into file names: lower-case letters, digits, ``-`` and ``_``.
- ``IMAGES_MAX_PIXELS``: the largest original (width × height) the thumbnails job decodes (default 50 million,
  about 200 MB of RGBA pixels); a larger one fails as "image too large" without being decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_THUMBNAIL_SIZES: dict[str, tuple[int, int]] = {"small": (150, 150), "medium": (600, 600)}
DEFAULT_MAX_PIXELS = 50_000_000
MAX_SIDE = 10_000  # a thumbnail box side; larger is not a thumbnail
SIZE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def parse_thumbnail_sizes(value: Any) -> dict[str, tuple[int, int]]:
    """``IMAGES_THUMBNAIL_SIZES`` as ``{name: (width, height)}``.

    Raises:
        ValueError: not a non-empty dict of names to two whole numbers from 1 to 10,000.
    """
    example = 'e.g. {"small": [150, 150], "medium": [600, 600]}'
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"IMAGES_THUMBNAIL_SIZES is {value!r}: use a non-empty dict of size names to "
                         f"[max width, max height], {example}.")
    sizes = {}
    for name, box in value.items():
        if not isinstance(name, str) or not SIZE_NAME_RE.match(name):
            raise ValueError(f"IMAGES_THUMBNAIL_SIZES has the size name {name!r}: use 1-32 lower-case letters, "
                             "digits, '-' and '_' (it becomes part of the thumbnails' file names).")
        if (not isinstance(box, list | tuple) or len(box) != 2
                or not all(isinstance(side, int) and not isinstance(side, bool) and 1 <= side <= MAX_SIDE
                           for side in box)):
            raise ValueError(f"IMAGES_THUMBNAIL_SIZES[{name!r}] is {box!r}: use [max width, max height], two "
                             f"whole numbers from 1 to {MAX_SIDE}, {example}.")
        sizes[name] = (box[0], box[1])
    return sizes


def parse_max_pixels(value: Any) -> int:
    """``IMAGES_MAX_PIXELS`` as an int.

    Raises:
        ValueError: not a whole number ≥ 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"IMAGES_MAX_PIXELS is {value!r}: use a whole number of pixels ≥ 1 "
                         f"(default {DEFAULT_MAX_PIXELS}).")
    return value


def thumbnail_sizes() -> dict[str, tuple[int, int]]:
    """The configured sizes. Raises ImproperlyConfigured when the setting is malformed (``manage.py check``
    says so first)."""
    try:
        return parse_thumbnail_sizes(getattr(settings, "IMAGES_THUMBNAIL_SIZES", DEFAULT_THUMBNAIL_SIZES))
    except ValueError as e:
        raise ImproperlyConfigured(str(e)) from None


def max_pixels() -> int:
    """The configured pixel limit. Raises ImproperlyConfigured when the setting is malformed."""
    try:
        return parse_max_pixels(getattr(settings, "IMAGES_MAX_PIXELS", DEFAULT_MAX_PIXELS))
    except ValueError as e:
        raise ImproperlyConfigured(str(e)) from None
