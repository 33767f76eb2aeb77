"""Thumbnails with Pillow, from an original in storage to one file per size in storage.

The original is checked before anything is decoded: Pillow must recognise it (``not an image`` otherwise),
its header must declare at most ``IMAGES_MAX_PIXELS`` pixels (``image too large`` otherwise: a small PNG can
declare 20000×20000 and decode to gigabytes), and ``verify()`` must find its data sound. Then it is decoded
once, turned upright by its EXIF orientation, converted, and each size made from it.

Format: JPEG (quality 85), or PNG when the original has pixels that are not fully opaque: JPEG has no alpha
and would paint them black. Animated images give their first frame.
"""

from __future__ import annotations

import io
import posixpath
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

THUMBNAILS_DIR = "images/thumbnails"
JPEG_QUALITY = 85


class ImageRejected(Exception):
    """The original can never become thumbnails (not an image, too large, broken): retrying cannot help.

    Its message is the reason stored on the row, e.g. ``not an image: ...`` or ``image too large: ...``.
    """


@dataclass(frozen=True)
class Thumbnails:
    """What :func:`make_thumbnails` made: the original's upright size and ``{size name: storage path}``."""

    width: int
    height: int
    paths: dict[str, str]


def make_thumbnails(storage: Storage, name: str, folder: str, sizes: Mapping[str, tuple[int, int]],
                    max_pixels: int, on_progress: Callable[[int, int], None] | None = None) -> Thumbnails:
    """Write one thumbnail per size of the original ``name`` to ``images/thumbnails/<folder>/`` in ``storage``.

    Each fits inside its box with the original's aspect ratio and is never larger than the original.
    ``on_progress(done, total)`` is called after each size. Files already written are deleted when a later
    size fails.

    Raises:
        ImageRejected: not an image Pillow reads, over ``max_pixels``, or broken data.
        FileNotFoundError: no such file in storage.
        Exception: whatever reading or writing storage raised (worth a retry).
    """
    with storage.open(name, "rb") as original, pillow_limit(max_pixels):
        image = _decoded(original, name, max_pixels)
    image, opaque = _converted(image, name)
    stem = posixpath.splitext(posixpath.basename(name))[0][:100] or "image"
    save_options: dict[str, Any]
    extension, save_options = ("jpg", {"format": "JPEG", "quality": JPEG_QUALITY, "optimize": True}) if opaque \
        else ("png", {"format": "PNG", "optimize": True})
    written: dict[str, str] = {}
    try:
        for done, (size_name, box) in enumerate(sizes.items(), 1):
            thumbnail = _fit(image, box)
            buffer = io.BytesIO()
            thumbnail.save(buffer, **save_options)
            path = f"{THUMBNAILS_DIR}/{folder}/{stem}-{size_name}.{extension}"
            written[size_name] = storage.save(path, ContentFile(buffer.getvalue()))
            if on_progress is not None:
                on_progress(done, len(sizes))
    except BaseException:
        for path in written.values():
            storage.delete(path)
        raise
    return Thumbnails(width=image.width, height=image.height, paths=written)


@contextmanager
def pillow_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``, process-wide) at ``max_pixels``
    while an original is read, then back: it then also covers what this module's own header check cannot see
    (frames and tiles that plugins size while decoding). The value is the same for every image job, so jobs
    running in threads side by side do not weaken each other's guard below this module's header check."""
    saved = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def _decoded(original: IO[bytes], name: str, max_pixels: int) -> PILImage.Image:
    """The original decoded and upright, after the checks of the module docstring."""
    try:
        _opened(original, name, max_pixels).verify()  # the data, without decoding it (PNG: every chunk's CRC)
        image = _opened(original, name, max_pixels)  # verify() leaves the image unusable: open it again
        image.load()
        return ImageOps.exif_transpose(image)
    except ImageRejected:
        raise
    except PILImage.DecompressionBombError as e:  # a frame or tile past the limit, sized while decoding
        raise ImageRejected(f"image too large: {e} (IMAGES_MAX_PIXELS={max_pixels})") from e
    except (OSError, SyntaxError, ValueError, IndexError, TypeError, EOFError) as e:
        raise ImageRejected(f"not a valid image: {posixpath.basename(name)} is broken ({_describe(e)})") from e


def _opened(original: IO[bytes], name: str, max_pixels: int) -> PILImage.Image:
    """Pillow's lazy open (the header only), refusing what is not an image or declares too many pixels."""
    original.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; the check below names the size.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            image = PILImage.open(original)
    except PILImage.DecompressionBombError:
        raise ImageRejected(f"image too large: more than {2 * max_pixels} pixels exceeds "
                            f"IMAGES_MAX_PIXELS={max_pixels}") from None
    except UnidentifiedImageError:
        raise ImageRejected(f"not an image: Pillow recognises no image format in {posixpath.basename(name)}") \
            from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(f"image too large: {width}×{height} pixels exceeds IMAGES_MAX_PIXELS={max_pixels}")
    return image


def _converted(image: PILImage.Image, name: str) -> tuple[PILImage.Image, bool]:
    """``image`` in RGB when every pixel is opaque, else in RGBA; and which (True: opaque)."""
    try:
        opaque = _is_opaque(image)
        mode = "RGB" if opaque else "RGBA"
        return (image if image.mode == mode else image.convert(mode)), opaque
    except ValueError as e:  # a mode Pillow cannot convert
        raise ImageRejected(f"not a valid image: {posixpath.basename(name)} has pixels in mode {image.mode}, "
                            f"which Pillow cannot convert ({_describe(e)})") from e


def _fit(image: PILImage.Image, box: tuple[int, int]) -> PILImage.Image:
    """``image`` scaled to fit inside ``box`` with its aspect ratio, never enlarged.

    Unlike ``Image.thumbnail()`` it resizes into a new small image instead of a copy of the whole original per
    size (an original may hold 50 million pixels).
    """
    width, height = image.size
    scale = min(box[0] / width, box[1] / height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, PILImage.Resampling.LANCZOS, reducing_gap=2.0)


def _is_opaque(image: PILImage.Image) -> bool:
    """Whether every pixel is fully opaque (an alpha channel that is 255 everywhere counts as opaque)."""
    if not image.has_transparency_data:
        return True
    alpha = image.convert("RGBA").getchannel("A")
    return alpha.getextrema()[0] == 255


def _describe(error: Any) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
