"""The images app: uploads get thumbnails from a real worker, bad files fail with their reason and no retry.

Files are real (Pillow makes them) and live in the session's MEDIA_ROOT, which the worker processes share.
The end-to-end tests run ``manage.py rqworker media``; the others run the job function in the test process.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from PIL import Image as PILImage

from images.checks import check_settings
from images.jobs import thumbnails
from images.models import Image, Status
from queues import QueueEvents, UnrecoverableError, get_queue
from tests.helpers import wait_for

CHANGELIST = reverse("admin:images_image_changelist")
RED, BLUE = (255, 0, 0), (0, 0, 255)


# --- files ---------------------------------------------------------------------------------------------------

def jpeg(width: int = 1200, height: int = 800, orientation: int | None = None) -> bytes:
    """A JPEG whose stored left half is red and right half blue, with an EXIF orientation when given."""
    image = PILImage.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def png(width: int, height: int, *, transparent: bool = False) -> bytes:
    image = PILImage.new("RGBA", (width, height), (0, 128, 0, 255))
    if transparent:
        image.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` × ``height`` white pixels, compressed to almost nothing: its header declares
    every pixel, and decoding it would take ``width × height`` bytes (a decompression bomb at 20000 × 20000)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * ((width + 7) // 8)  # filter "none", then the row's bits
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def upload(title: str, name: str, content: bytes) -> Image:
    """Save an image through the model, as any code path would (no form, no Pillow check)."""
    image = Image(title=title, file=ContentFile(content, name=name))
    image.save()
    return image


def opened(path: str) -> PILImage.Image:
    with default_storage.open(path, "rb") as f:
        image = PILImage.open(f)
        image.load()
    return image


def close_to(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


# --- end to end, with a worker process ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_thumbnails__worker_makes_every_size_upright_and_marks_done(workers) -> None:
    """Upload a JPEG, an EXIF-rotated JPEG and a PNG with transparency: the worker writes each size, done."""
    proc = workers.start("rqworker", "media")
    photo = upload("Photo", "photo.jpg", jpeg(1200, 800))
    rotated = upload("Rotated", "rotated.jpg", jpeg(1200, 800, orientation=6))  # shown 90° clockwise: 800 × 1200
    logo = upload("Logo", "logo.png", png(400, 300, transparent=True))
    rows = (photo, rotated, logo)
    wait_for(lambda: all(Image.objects.get(pk=r.pk).status in (Status.DONE, Status.FAILED) for r in rows), 60,
             "the three images to be processed", proc)

    photo, rotated, logo = (Image.objects.get(pk=r.pk) for r in rows)
    events = QueueEvents("media", last_event_id="0").read(1000)
    for row in (photo, rotated, logo):
        assert (row.status, row.error, set(row.thumbnails)) == (Status.DONE, "", {"small", "medium"})
        handle = get_queue("media").get_job(row.job_id)
        assert (handle.get_state(), handle.progress) == ("completed", 100)
        # One progress event per size: half done after the first of two, all done after the second.
        assert [e["data"] for e in events if e["event"] == "progress" and e["job_id"] == row.job_id] == [50, 100]
        assert all(default_storage.exists(path) for path in row.thumbnails.values())
        assert all(path.startswith(f"images/thumbnails/{row.pk}/") for path in row.thumbnails.values())

    assert (photo.width, photo.height) == (1200, 800)
    assert {name: opened(path).size for name, path in photo.thumbnails.items()} == {"small": (150, 100),
                                                                                     "medium": (600, 400)}
    assert opened(photo.thumbnails["small"]).format == "JPEG"

    assert (rotated.width, rotated.height) == (800, 1200)
    small = opened(rotated.thumbnails["small"])
    assert small.size == (100, 150)
    # The stored left (red) half is the top once upright; no orientation is left for a browser to apply again.
    assert close_to(small.getpixel((50, 5)), RED) and close_to(small.getpixel((50, 145)), BLUE)
    assert small.getexif().get(0x0112) in (None, 1)

    medium = opened(logo.thumbnails["medium"])
    assert (medium.format, medium.mode, medium.size) == ("PNG", "RGBA", (400, 300))  # never enlarged
    assert medium.getpixel((10, 10))[3] == 0 and medium.getpixel((390, 10))[3] == 255
    assert opened(logo.thumbnails["small"]).size == (150, 112)

    # A job that is not the row's (left behind by a newer upload or a regeneration) touches nothing.
    stale = get_queue("media").add(thumbnails, {"image_id": photo.pk}, job_id=f"image-{photo.pk}-stale")
    wait_for(lambda: stale.get_state() == "completed", 30, "the stale job to end", proc)
    assert stale.return_value() == {"image_id": photo.pk, "skipped": f"superseded by job {photo.job_id}"}
    assert Image.objects.get(pk=photo.pk).thumbnails == photo.thumbnails


@pytest.mark.django_db(transaction=True)
def test_thumbnails__worker_fails_a_non_image_and_bombs_at_once_with_the_reason(workers) -> None:
    """A text file named .png and images past IMAGES_MAX_PIXELS fail on the first run, with why, no thumbnails."""
    proc = workers.start("rqworker", "media")
    text = upload("Notes", "notes.png", b"Shopping list: eggs, milk.\n")
    large = upload("Large", "large.png", blank_png(8000, 8000))  # 64 M pixels: up to twice the limit
    bomb = upload("Bomb", "bomb.png", blank_png(20000, 20000))  # 400 M pixels in a few kilobytes
    assert len(default_storage.open(bomb.file.name).read()) < 100_000
    rows = (text, large, bomb)
    wait_for(lambda: all(Image.objects.get(pk=r.pk).status == Status.FAILED for r in rows), 60,
             "the three images to fail", proc)

    text, large, bomb = (Image.objects.get(pk=r.pk) for r in rows)
    assert text.error == "not an image: Pillow recognises no image format in notes.png"
    assert large.error == "image too large: 8000×8000 pixels exceeds IMAGES_MAX_PIXELS=50000000"
    assert bomb.error == "image too large: more than 100000000 pixels exceeds IMAGES_MAX_PIXELS=50000000"
    for row in (text, large, bomb):
        assert (row.thumbnails, row.width, row.height) == ({}, None, None)
        handle = get_queue("media").get_job(row.job_id)
        # The media queue allows 2 attempts: failed (not delayed for a retry) after one run.
        assert (handle.get_state(), handle.attempts_made) == ("failed", 1)
        assert "UnrecoverableError" in handle.rq_job.latest_result().exc_string


# --- the job, in the test process ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_thumbnails__a_rerun_replaces_the_old_files() -> None:
    """Run the job twice: the second run's thumbnails replace the first's, whose files are deleted."""
    image = upload("Photo", "rerun.jpg", jpeg(640, 480))
    first = thumbnails(image_id=image.pk)["thumbnails"]
    second = thumbnails(image_id=image.pk)["thumbnails"]

    image.refresh_from_db()
    assert (image.status, image.thumbnails) == (Status.DONE, second)
    assert set(first.values()).isdisjoint(second.values())
    assert not any(default_storage.exists(path) for path in first.values())
    assert all(default_storage.exists(path) for path in second.values())


@pytest.mark.django_db
@override_settings(IMAGES_MAX_PIXELS=600_000)
def test_thumbnails__over_images_max_pixels_fails_for_good() -> None:
    """With IMAGES_MAX_PIXELS lowered, a 1200×800 photo fails unrecoverably, naming its size and the limit."""
    pillow_limit = PILImage.MAX_IMAGE_PIXELS
    image = upload("Photo", "limited.jpg", jpeg(1200, 800))
    with pytest.raises(UnrecoverableError, match="image too large"):
        thumbnails(image_id=image.pk)

    image.refresh_from_db()
    assert (image.status, image.error) == (Status.FAILED,
                                           "image too large: 1200×800 pixels exceeds IMAGES_MAX_PIXELS=600000")
    assert PILImage.MAX_IMAGE_PIXELS == pillow_limit  # Pillow's guard is put back for the rest of the process


@pytest.mark.django_db
@override_settings(IMAGES_THUMBNAIL_SIZES={"strip": [300, 100], "huge": [5000, 5000]})
def test_thumbnails__sizes_fit_their_boxes_and_opaque_alpha_is_jpeg() -> None:
    """Each thumbnail fits its box, keeps the aspect, is never enlarged; an all-opaque PNG becomes JPEG."""
    image = upload("Opaque", "opaque.png", png(400, 300))
    made = thumbnails(image_id=image.pk)["thumbnails"]

    assert {name: (opened(path).format, opened(path).size) for name, path in made.items()} == {
        "strip": ("JPEG", (133, 100)), "huge": ("JPEG", (400, 300))}


@pytest.mark.django_db
def test_thumbnails__a_truncated_image_fails_for_good() -> None:
    """A PNG cut short (its header intact) fails the row as broken, without retries."""
    image = upload("Cut", "truncated.png", png(300, 200)[:-40])
    with pytest.raises(UnrecoverableError, match="not a valid image"):
        thumbnails(image_id=image.pk)
    image.refresh_from_db()
    assert image.status == Status.FAILED
    assert image.error.startswith(f"not a valid image: {Path(image.file.name).name} is broken ("), image.error


@pytest.mark.django_db
def test_thumbnails__a_missing_original_fails_for_good() -> None:
    """An original deleted from storage behind the row's back fails the row, saying so, without retries."""
    image = upload("Gone", "gone.jpg", jpeg(200, 100))
    default_storage.delete(image.file.name)
    with pytest.raises(UnrecoverableError, match="file missing"):
        thumbnails(image_id=image.pk)
    image.refresh_from_db()
    assert (image.status, image.error) == (Status.FAILED, f"file missing: {image.file.name} is not in storage")


# --- saving, replacing, deleting -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_save__enqueues_once_per_file_on_commit(django_capture_on_commit_callbacks) -> None:
    """A new file enqueues one job on commit; saving again without a new file enqueues nothing."""
    media = get_queue("media")
    with django_capture_on_commit_callbacks(execute=True):
        image = upload("Photo", "once.jpg", jpeg(300, 200))
    with django_capture_on_commit_callbacks(execute=True):
        image.title = "Renamed"
        image.save()
        Image.objects.get(pk=image.pk).save()

    assert image.job_id.startswith(f"image-{image.pk}-") and image.job_id.endswith("-1")
    handle = media.get_job(image.job_id)
    assert (handle.get_state(), handle.data) == ("waiting", {"image_id": image.pk})
    assert media.get_job_counts()["waiting"] == 1


@pytest.mark.django_db
def test_save__a_replaced_file_gets_a_new_job_and_the_old_original_goes(django_capture_on_commit_callbacks) -> None:
    """Replace the file: a new job takes over the row; the old original is deleted once the change commits."""
    with django_capture_on_commit_callbacks(execute=True):
        image = upload("Photo", "before.jpg", jpeg(300, 200))
    old_name, old_job = image.file.name, image.job_id
    image = Image.objects.get(pk=image.pk)
    with django_capture_on_commit_callbacks(execute=True):
        image.file = ContentFile(jpeg(200, 300), name="after.jpg")
        image.save()

    assert image.job_id != old_job and get_queue("media").get_job(image.job_id).get_state() == "waiting"
    assert not default_storage.exists(old_name) and default_storage.exists(image.file.name)
    assert thumbnails(image_id=image.pk)["width"] == 200  # the old job's run would now skip: not the row's job


@pytest.mark.django_db
def test_delete__removes_the_original_and_thumbnails_on_commit(django_capture_on_commit_callbacks) -> None:
    """Deleting a row deletes its files from storage once the deletion commits."""
    image = upload("Photo", "deleted.jpg", jpeg(300, 200))
    thumbnails(image_id=image.pk)
    image.refresh_from_db()
    files = [image.file.name, *image.thumbnails.values()]
    assert all(default_storage.exists(name) for name in files)
    with django_capture_on_commit_callbacks(execute=True):
        Image.objects.filter(pk=image.pk).delete()
    assert not any(default_storage.exists(name) for name in files)


# --- the admin -------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_add__an_upload_creates_the_row_and_enqueues_its_job(admin_client: Client, admin_user: User,
                                                                   django_capture_on_commit_callbacks) -> None:
    """POST a real upload to the add view: the row is created (uploader set) and its job is waiting in Redis."""
    upload_file = SimpleUploadedFile("cat.png", png(320, 240), content_type="image/png")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:images_image_add"), {"title": "Cat", "file": upload_file})
    assert response.status_code == 302, response.content.decode()[:2000]

    image = Image.objects.get()
    assert (image.title, image.uploaded_by, image.status) == ("Cat", admin_user, Status.PENDING)
    assert image.file.name.startswith("images/") and default_storage.exists(image.file.name)
    handle = get_queue("media").get_job(image.job_id)
    assert (handle.get_state(), handle.name, handle.data) == ("waiting", "images.thumbnails", {"image_id": image.pk})


@pytest.mark.django_db
def test_admin_add__refuses_a_file_pillow_cannot_read(admin_client: Client) -> None:
    """The admin form checks uploads with Pillow: a text file named .png is refused, nothing is stored or queued."""
    upload_file = SimpleUploadedFile("notes.png", b"not an image", content_type="image/png")
    response = admin_client.post(reverse("admin:images_image_add"), {"title": "Notes", "file": upload_file})
    assert response.status_code == 200
    assert "Upload a valid image" in response.content.decode()
    assert not Image.objects.exists()
    assert get_queue("media").get_job_counts()["waiting"] == 0


@pytest.mark.django_db
def test_admin__list_and_change_page_show_the_thumbnails(admin_client: Client) -> None:
    """The list shows each row's small thumbnail; the change page every size, the status and the job."""
    image = upload("Photo", "shown.jpg", jpeg(300, 200))
    thumbnails(image_id=image.pk)
    image.refresh_from_db()
    small, medium = (default_storage.url(image.thumbnails[name]) for name in ("small", "medium"))

    listing = admin_client.get(CHANGELIST).content.decode()
    assert f'<img src="{small}"' in listing and medium not in listing
    page = admin_client.get(reverse("admin:images_image_change", args=[image.pk])).content.decode()
    assert f'<img src="{small}"' in page and f'<img src="{medium}"' in page
    assert "Done" in page and f"{image.job_id}: not in Redis" in page


@pytest.mark.django_db
def test_admin_regenerate__queues_a_new_job_once(admin_client: Client, django_capture_on_commit_callbacks) -> None:
    """The action re-queues a done image under a new job id; again while it waits, it adds nothing."""
    image = upload("Photo", "again.jpg", jpeg(300, 200))
    thumbnails(image_id=image.pk)
    image.refresh_from_db()
    first_job = image.job_id

    def regenerate() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(CHANGELIST, {"action": "regenerate_thumbnails",
                                                      "_selected_action": [image.pk]})
        assert response.status_code == 302

    regenerate()
    image.refresh_from_db()
    assert image.status == Status.PENDING and image.job_id == first_job[:-1] + "2"
    assert get_queue("media").get_job(image.job_id).get_state() == "waiting"
    regenerate()
    image.refresh_from_db()
    assert image.job_id == first_job[:-1] + "2"
    assert get_queue("media").get_job_counts()["waiting"] == 1


@pytest.mark.django_db
def test_admin_regenerate__needs_the_change_permission(django_capture_on_commit_callbacks) -> None:
    """A staff user who may only view images cannot run the action."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_image"))
    client = Client()
    client.force_login(user)
    image = upload("Photo", "viewed.jpg", jpeg(300, 200))
    thumbnails(image_id=image.pk)
    job_id = Image.objects.get(pk=image.pk).job_id

    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {"action": "regenerate_thumbnails", "_selected_action": [image.pk]})
    image.refresh_from_db()
    assert (image.status, image.job_id) == (Status.DONE, job_id)
    assert get_queue("media").get_job_counts()["waiting"] == 0


# --- settings checks -------------------------------------------------------------------------------------------

def test_checks__defaults_pass() -> None:
    """The default settings raise no error."""
    assert check_settings() == []


@pytest.mark.parametrize(("sizes", "problem"), [
    ({}, "IMAGES_THUMBNAIL_SIZES is {}: use a non-empty dict"),
    ({"Small!": [150, 150]}, "IMAGES_THUMBNAIL_SIZES has the size name 'Small!'"),
    ({"small": [150]}, "IMAGES_THUMBNAIL_SIZES['small'] is [150]: use [max width, max height]"),
    ({"small": [0, 150]}, "IMAGES_THUMBNAIL_SIZES['small'] is [0, 150]"),
    ({"small": "150x150"}, "IMAGES_THUMBNAIL_SIZES['small'] is '150x150'"),
])
def test_checks__bad_thumbnail_sizes(sizes: object, problem: str) -> None:
    """A malformed IMAGES_THUMBNAIL_SIZES is images.E001, naming what is wrong."""
    with override_settings(IMAGES_THUMBNAIL_SIZES=sizes):
        [error] = check_settings()
    assert error.id == "images.E001" and error.msg.startswith(problem), error.msg


@pytest.mark.parametrize("value", [0, -5, "50000000", 1.5, True])
def test_checks__bad_max_pixels(value: object) -> None:
    """IMAGES_MAX_PIXELS other than a whole number ≥ 1 is images.E002."""
    with override_settings(IMAGES_MAX_PIXELS=value):
        [error] = check_settings()
    assert (error.id, error.msg) == ("images.E002", f"IMAGES_MAX_PIXELS is {value!r}: use a whole number of "
                                                    "pixels ≥ 1 (default 50000000).")

