"""Settings for the project, read from environment variables (and ``.env`` when asked to).

Every variable is listed in README.md. A bad value stops start-up with one line naming the variable.
"""

from pathlib import Path
from typing import Any

import environ

from config.env import EnvError, env_bool, env_int, env_list, env_str, env_token, redis_from_env
from queues.conf import RQQueues

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env_bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))

DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise EnvError(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off: set it to a long random string "
            "(or set DJANGO_DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - only ever used with DEBUG on
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

# HTTPS (production, behind a proxy that sets X-Forwarded-Proto): redirect to it, cookies only over it, and HSTS
# for DJANGO_HSTS_SECONDS (0: none; raise it once the site is served over HTTPS only). `check --deploy` is clean.
if env_bool("DJANGO_HTTPS", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", default=0, minimum=0, maximum=2 * 365 * 24 * 3600,
                              what="seconds")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    # Django's task API (django.tasks, backported): its @task functions run on these queues (TASKS below).
    "django_tasks",
    "queues",
    "notifications",
    # The seed's other queue types, each with the job it is named for (README, "Queue types").
    "webhooks",
    "exports",
    "imports",
    "images",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
if _database_url.split("://", 1)[0] not in environ.Env.DB_SCHEMES:
    raise EnvError(
        "DATABASE_URL is not a database URL Django can use: e.g. sqlite:////abs/path/db.sqlite3 "
        f"or postgres://user@host:5432/name (schemes: {', '.join(sorted(environ.Env.DB_SCHEMES))})."
    )
DATABASES = {"default": environ.Env.db_url_config(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Where Django's login page (/accounts/login/, for users who are not staff) sends a user when no ?next= is given:
# the in-app inbox API. POST /accounts/logout/ shows templates/registration/logged_out.html.
LOGIN_REDIRECT_URL = "/api/notifications/"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "build" / "static"
# Uploads (images, user imports) and generated files (exports), in Django's default storage.
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(BASE_DIR / "build" / "media")))

# --- Email ----------------------------------------------------------------------------------------
# EMAIL_URL: smtp://[user:password@]host:port (smtp+tls:// for STARTTLS, smtp+ssl:// for TLS), or
# consolemail:// (the default: mail is printed), filemail:///path, memorymail://, dummymail://.
_email_url = env_str("EMAIL_URL", "consolemail://")
if _email_url.split("://", 1)[0] not in environ.Env.EMAIL_SCHEMES:
    raise EnvError(
        "EMAIL_URL is not an email URL: use smtp://user:password@host:587, smtp+tls://…, smtp+ssl://… or "
        f"consolemail:// (schemes: {', '.join(sorted(environ.Env.EMAIL_SCHEMES))})."
    )
_email = environ.Env.email_url_config(_email_url)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
if _email["EMAIL_FILE_PATH"]:
    EMAIL_FILE_PATH = "/" + _email["EMAIL_FILE_PATH"]
# Seconds an SMTP connection may block: a hung mail server fails the attempt (and it is retried) well
# before the email queue's 60 s job timeout.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", default=10, minimum=1, maximum=300, what="a number of seconds")
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "webmaster@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "queues": {"handlers": ["console"], "level": env_str("QUEUES_LOG_LEVEL", "INFO"), "propagate": False},
        **{app: {"handlers": ["console"], "level": env_str("QUEUES_LOG_LEVEL", "INFO"), "propagate": False}
           for app in ("notifications", "webhooks", "exports", "imports", "images")},
    },
}

# Error reports (the DJANGO_DEBUG page, its text form, the email to ADMINS) show settings, request.META (the
# environment, under runserver) and every frame's locals: mask the passwords, tokens and URL passwords in them.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SecretsFilter"
DEFAULT_EXCEPTION_REPORTER = "config.reporting.SecretsReporter"

# --- Queues -------------------------------------------------------------------------------------
# The Redis server, from REDIS_URL or REDIS_HOST / REDIS_PORT / REDIS_DB / REDIS_PASSWORD / REDIS_TLS.
QUEUES_REDIS = redis_from_env()

# Job data larger than this (as JSON) is refused at enqueue: pass ids, fetch the rows in the job.
QUEUES_MAX_PAYLOAD_BYTES = 64 * 1024

# Seconds a stopping worker lets its running job finish before putting it back to waiting.
QUEUES_SHUTDOWN_GRACE = 30

# The queues, BullMQ's "Common Queue Types". Each has default options for its jobs; a @job decorator
# or a single add() call may override them. Times are in seconds (BullMQ uses milliseconds).
# Worker controls per queue: "concurrency" (job processes per `manage.py rqworker`, default 1), "limiter"
# ({"max": N, "duration": s}, shared by all workers), "stalled_interval" (default 30 s) and
# "max_stalled_count" (default 1), "permanent_errors" (exception classes that fail a job at once).
_RETAIN_A_DAY = {"count": 100, "age": 24 * 60 * 60}
QUEUES: dict[str, dict[str, Any]] = {
    # Email sending: transactional mail through Django's email backend. SMTP hiccups are common and
    # short, so retry a few times with exponential backoff. As the BullMQ guide: 5 at once, at most 10 a
    # second (SMTP providers throttle).
    "email": {
        "concurrency": 5,
        "limiter": {"max": 10, "duration": 1},
        "default_job_options": {
            "attempts": 3,
            "backoff": {"type": "exponential", "delay": 1},
            "remove_on_complete": _RETAIN_A_DAY,
            "remove_on_fail": {"count": 500},
            "timeout": 60,
        },
    },
    # Notifications: push and in-app notifications; short jobs, retried quickly.
    "notifications": {
        "default_job_options": {
            "attempts": 3,
            "backoff": {"type": "exponential", "delay": 1},
            "remove_on_complete": _RETAIN_A_DAY,
            "remove_on_fail": {"count": 500},
            "timeout": 30,
        },
    },
    # Imports: long data imports; a failed import is usually bad data, so retry once and keep failures.
    "imports": {
        "default_job_options": {
            "attempts": 2,
            "backoff": {"type": "fixed", "delay": 30},
            "remove_on_complete": {"count": 50, "age": 7 * 24 * 60 * 60},
            "remove_on_fail": False,
            "timeout": 60 * 60,
        },
    },
    # Exports: report generation; users wait for the file, so retry soon after a failure.
    "exports": {
        "default_job_options": {
            "attempts": 2,
            "backoff": {"type": "fixed", "delay": 10},
            "remove_on_complete": {"count": 50, "age": 24 * 60 * 60},
            "remove_on_fail": {"count": 200},
            "timeout": 30 * 60,
        },
    },
    # Media: image and video processing; CPU-heavy and slow.
    "media": {
        "default_job_options": {
            "attempts": 2,
            "backoff": {"type": "exponential", "delay": 5},
            "remove_on_complete": _RETAIN_A_DAY,
            "remove_on_fail": {"count": 200},
            "timeout": 15 * 60,
        },
    },
    # Webhooks: calls to external APIs, which fail transiently; retry longer with wider backoff. I/O-bound,
    # so a few at once.
    "webhooks": {
        "concurrency": 3,
        "default_job_options": {
            "attempts": 5,
            "backoff": {"type": "exponential", "delay": 2},
            "remove_on_complete": _RETAIN_A_DAY,
            "remove_on_fail": {"count": 1000},
            "timeout": 30,
        },
    },
    # Django's tasks (TASKS below): a reusable app's @task without queue_name runs here.
    "default": {
        "default_job_options": {
            "attempts": 3,
            "backoff": {"type": "exponential", "delay": 1},
            "remove_on_complete": _RETAIN_A_DAY,
            "remove_on_fail": {"count": 500},
            "timeout": 10 * 60,
        },
    },
    # Cleanup: scheduled housekeeping; it runs again on its next schedule, so one attempt.
    "cleanup": {
        "default_job_options": {
            "attempts": 1,
            "remove_on_complete": {"count": 20},
            "remove_on_fail": {"count": 100},
            "timeout": 10 * 60,
        },
    },
}

# Django's task API (README, "Using Django's tasks API"): @task functions of any app run on these queues, by the same
# `manage.py rqworker`. A task's queue_name must be one of "QUEUES"; "OPTIONS" are job options for every task.
TASKS = {
    "default": {
        "BACKEND": "queues.tasks.QueuesBackend",
        "QUEUES": list(QUEUES),
    },
}

# Job schedulers (BullMQ's upsertJobScheduler): every `rqworker` upserts these when it starts and removes the ones
# taken out of this dict; runs are added once per tick whatever the number of workers. "pattern" is cron (5 fields,
# or 6 with seconds first) in "tz" (default TIME_ZONE); or "every": seconds. Other keys are the runs' job options.
QUEUES_JOB_SCHEDULERS = {
    # The seed's scheduled maintenance: each queue's retention applied to its old jobs, and notifications that
    # ended more than NOTIFICATIONS_KEEP_DAYS ago deleted, every day at 03:15.
    "cleanup": {"queue": "cleanup", "job": "notifications.cleanup", "pattern": "15 3 * * *"},
    # The notifications outbox: rows whose enqueue failed (Redis down) or whose job Redis lost, enqueued again.
    "notifications-sweep": {"queue": "cleanup", "job": "notifications.sweep", "every": 60},
    # Export files older than EXPORTS_KEEP_DAYS deleted (their rows marked expired), every day at 03:45.
    "exports-cleanup": {"queue": "cleanup", "job": "exports.cleanup", "pattern": "45 3 * * *"},
    # Webhook events and deliveries older than WEBHOOKS_KEEP_DAYS deleted, every day at 03:30.
    "webhooks-cleanup": {"queue": "cleanup", "job": "webhooks.cleanup", "pattern": "30 3 * * *"},
}
NOTIFICATIONS_KEEP_DAYS = env_int("NOTIFICATIONS_KEEP_DAYS", default=90, minimum=1, maximum=100_000, what="days")
# Images (images/, docs/images.md): thumbnail boxes by size name ([max width, max height]; the names go into file
# names), and the largest original, in pixels, the thumbnails job decodes (a bigger one fails as "image too large").
IMAGES_THUMBNAIL_SIZES = {"small": [150, 150], "medium": [600, 600]}
IMAGES_MAX_PIXELS = env_int("IMAGES_MAX_PIXELS", default=50_000_000, minimum=1, maximum=2_000_000_000,
                            what="a number of pixels")
# User imports (imports/, docs/imports.md): the largest CSV the admin's upload accepts, and rows per transaction.
IMPORTS_MAX_BYTES = env_int("IMPORTS_MAX_BYTES", default=50 * 1024 * 1024, minimum=1, maximum=2 * 1024**3,
                            what="bytes")
IMPORTS_BATCH_SIZE = 500
EXPORTS_KEEP_DAYS = env_int("EXPORTS_KEEP_DAYS", default=7, minimum=1, maximum=100_000, what="days")

# --- Webhooks -------------------------------------------------------------------------------------
# Seconds to connect to a receiver and to read its answer (keep the sum under the webhooks queue's 30 s job
# timeout), the longest Retry-After of a 429 honoured, and whether endpoints may point at internal addresses.
WEBHOOKS_TIMEOUT = (
    env_int("WEBHOOKS_CONNECT_TIMEOUT", default=3, minimum=1, maximum=60, what="seconds"),
    env_int("WEBHOOKS_READ_TIMEOUT", default=10, minimum=1, maximum=60, what="seconds"),
)
WEBHOOKS_MAX_RETRY_AFTER = env_int("WEBHOOKS_MAX_RETRY_AFTER", default=3600, minimum=1, maximum=24 * 3600,
                                   what="seconds")
WEBHOOKS_KEEP_DAYS = env_int("WEBHOOKS_KEEP_DAYS", default=30, minimum=1, maximum=100_000, what="days")
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)

# django-rq reads RQ_QUEUES: derive it from QUEUES and QUEUES_REDIS, so the two never disagree, and
# make its rqworker / rqworker-pool commands run this app's worker class (JSON only).
RQ_QUEUES = RQQueues()
# django-rq's classes: this app's worker, job and queue (its pages that take a queue index read RQ["QUEUE_CLASS"],
# not RQ_QUEUES' own).
RQ = {"WORKER_CLASS": "queues.worker.Worker", "JOB_CLASS": "queues.job.RQJob", "QUEUE_CLASS": "queues.rqqueue.RQQueue"}
# django-rq's pages are mounted at admin/django-rq/ behind the queues permissions (config/urls.py), not as
# its own admin entry, where any staff user could delete and requeue jobs.
RQ_SHOW_ADMIN_LINK = False
# The bearer token of django-rq's stats.json / metrics and of /queues/metrics (`Authorization: Bearer <token>`, for
# Prometheus). Unset: those pages answer staff sessions only.
if _rq_api_token := env_token("RQ_API_TOKEN", min_length=32):
    RQ_API_TOKEN = _rq_api_token
