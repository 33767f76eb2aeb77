"""Test settings: the project's settings, plus a test app with job functions.

The test session starts its own Redis server and points QUEUES_REDIS at it (tests/conftest.py).
"""

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASES, INSTALLED_APPS, QUEUES  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp", "tests.tasksapp"]

# One worker process per `rqworker` command and no rate limit on the project's queues in tests (its email
# queue runs 5 at once, 10 a second), so a test decides how many workers it starts and how fast they go;
# and queues of their own for the worker-control tests.
QUEUES = {name: {**spec, "concurrency": 1, "limiter": None} for name, spec in QUEUES.items()}
# Their tests count every job they ran (2,000 in the fault tests), so they keep every finished job (False), past
# the bounded default retention (the newest 1,000 completed).
_KEEP_ALL = {"attempts": 1, "remove_on_complete": False, "remove_on_fail": False}
QUEUES.update({
    "limited": {"limiter": {"max": 10, "duration": 1}, "default_job_options": _KEEP_ALL},
    "stalls": {"stalled_interval": 3, "max_stalled_count": 1, "default_job_options": _KEEP_ALL},
    "pool": {"concurrency": 3, "default_job_options": _KEEP_ALL},
    # Execution modes (tests/test_modes.py): recycling leaky processes, many jobs at once in threads.
    "leaky": {"max_memory_per_process": 400, "max_jobs_per_process": 4, "stalled_interval": 3,
              "default_job_options": _KEEP_ALL},
    "threaded": {"mode": "threads", "concurrency": 50, "default_job_options": _KEEP_ALL},
})
# The tests that must hold in every execution mode run their workers with QUEUES_TEST_MODE set to the mode: every
# queue that does not name its own mode then takes it.
if os.environ.get("QUEUES_TEST_MODE"):
    QUEUES = {name: {"mode": os.environ["QUEUES_TEST_MODE"], **spec} for name, spec in QUEUES.items()}
# Django's tasks may name every queue of the tests (tests/test_django_tasks_backend.py).
TASKS = {"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": list(QUEUES)}}
# Job schedulers from the settings: none unless a test's worker process is given some (tests/test_schedulers.py);
# the project's own (the daily cleanup) are checked by their own tests, not added to every test's Redis.
QUEUES_JOB_SCHEDULERS = json.loads(os.environ.get("QUEUES_TEST_SCHEDULERS") or "{}")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Worker processes started by tests must open the test database: SQLite's default test database lives in memory.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"tests-db-{os.getpid()}.sqlite3")}
else:  # named here, so that tests/conftest.py's test_database_url() gives worker processes the same one
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}

# Webhook receivers in the tests listen on 127.0.0.1 (the send-time and validation guards are tested with it off).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
# Uploads and exports of the session, shared with the worker processes it starts (they inherit the variable).
MEDIA_ROOT = Path(os.environ.setdefault("TESTS_MEDIA_ROOT", tempfile.mkdtemp(prefix="tests-media-")))
