"""Test settings: the project's settings, plus a test app with job functions.

The test session starts its own Redis server and points QUEUES_REDIS at it (tests/conftest.py).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASES, INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Worker processes started by tests must open the test database: SQLite's default test database lives in memory.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"tests-db-{os.getpid()}.sqlite3")}
