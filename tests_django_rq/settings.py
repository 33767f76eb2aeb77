# Copied from django-rq (https://github.com/rq/django-rq), tests/settings.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: the package name `tests` -> `tests_django_rq`, and the block at the end, which puts
# this app's classes (queues.rqqueue.RQQueue, queues.worker.Worker, queues.job.RQJob) under their tests.
import os

from tests_django_rq.redis_config import REDIS_CONFIG_1, REDIS_CONFIG_2

SECRET_KEY = 'a'

# Detect whether either django-redis or django-redis-cache is installed. This
# is only really used to conditionally configure options for the unit tests.
# In actually usage, no such check is necessary.
try:
    from django_redis import get_redis_connection

    REDIS_CACHE_TYPE = 'django-redis'
except ImportError:
    try:
        import redis_cache

        REDIS_CACHE_TYPE = 'django-redis-cache'
    except ImportError:
        REDIS_CACHE_TYPE = 'none'

INSTALLED_APPS = [
    'django.contrib.contenttypes',
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.messages',
    'django.contrib.sessions',
    'django_rq',
]


DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': ':memory:',
    },
}

if REDIS_CACHE_TYPE == 'django-redis':
    CACHES = {
        'default': {
            'BACKEND': 'django_redis.cache.RedisCache',
            'LOCATION': f"redis://{REDIS_CONFIG_1.host}:{REDIS_CONFIG_1.port}/{REDIS_CONFIG_1.db}",
            'OPTIONS': {
                'CLIENT_CLASS': 'django_redis.client.DefaultClient',
            },
        },
    }
elif REDIS_CACHE_TYPE == 'django-redis-cache':
    CACHES = {
        'default': {
            'BACKEND': 'redis_cache.cache.RedisCache',
            'LOCATION': f'{REDIS_CONFIG_1.host}:{REDIS_CONFIG_1.port}',
            'KEY_PREFIX': 'django-rq-tests',
            'OPTIONS': {
                'DB': REDIS_CONFIG_2.db,
                'MAX_ENTRIES': 5000,
            },
        },
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "rq_console": {
            "format": "%(asctime)s %(message)s",
            "datefmt": "%H:%M:%S",
        },
    },
    "handlers": {
        "rq_console": {
            "level": "DEBUG",
            # "class": "logging.StreamHandler",
            "class": "rq.logutils.ColorizingStreamHandler",
            "formatter": "rq_console",
            "exclude": ["%(asctime)s"],
        },
        'null': {
            'level': 'DEBUG',
            'class': 'logging.NullHandler',
        },
    },
    'loggers': {
        "rq.worker": {"handlers": ['null'], "level": "ERROR"},
    },
}


RQ_QUEUES = {
    'default': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'DEFAULT_TIMEOUT': 500,
        'DEFAULT_RESULT_TTL': 500,
    },
    'test': {
        'HOST': REDIS_CONFIG_2.host,
        'PORT': REDIS_CONFIG_2.port,
        'DB': REDIS_CONFIG_2.db,
    },
    'sentinel': {
        'SENTINELS': [(REDIS_CONFIG_1.host, 26736), (REDIS_CONFIG_1.host, 26737)],
        'MASTER_NAME': 'testmaster',
        'DB': REDIS_CONFIG_2.db,
        'USERNAME': 'redis-user',
        'PASSWORD': 'secret',
        'SOCKET_TIMEOUT': 10,
        'SENTINEL_KWARGS': {},
    },
    'test1': {
        'HOST': REDIS_CONFIG_2.host,
        'PORT': REDIS_CONFIG_2.port,
        'DB': REDIS_CONFIG_2.db,
        'DEFAULT_TIMEOUT': 400,
        'QUEUE_CLASS': 'tests_django_rq.fixtures.DummyQueue',
    },
    'test2': {
        'HOST': REDIS_CONFIG_2.host,
        'PORT': REDIS_CONFIG_2.port,
        'DB': REDIS_CONFIG_2.db,
    },
    'test3': {
        'HOST': REDIS_CONFIG_2.host,
        'PORT': REDIS_CONFIG_2.port,
        'DB': REDIS_CONFIG_2.db,
        'DEFAULT_RESULT_TTL': 800,
    },
    'async': {
        'HOST': REDIS_CONFIG_2.host,
        'PORT': REDIS_CONFIG_2.port,
        'DB': REDIS_CONFIG_2.db,
        'ASYNC': False,
    },
    'url': {
        'URL': 'redis://username:password@host:1234/',
        'DB': 4,
    },
    'url_with_db': {
        'URL': 'redis://username:password@host:1234/5',
    },
    'url_default_db': {
        'URL': 'redis://username:password@host:1234',
    },
    'django_rq_test': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
    },
    'scheduler_scheduler_active_test': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'ASYNC': False,
    },
    'scheduler_scheduler_inactive_test': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'ASYNC': False,
    },
    'worker_scheduler_active_test': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'ASYNC': False,
    },
    'worker_scheduler_inactive_test': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'ASYNC': False,
    },
    'django-redis': {
        'USE_REDIS_CACHE': 'default',
    },
    'django_rq_test2': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
    },
    'test_scheduler': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'DEFAULT_TIMEOUT': 400,
    },
    'test_serializer': {
        'HOST': REDIS_CONFIG_1.host,
        'PORT': REDIS_CONFIG_1.port,
        'DB': REDIS_CONFIG_1.db,
        'SERIALIZER': 'rq.serializers.JSONSerializer',
    },
}
RQ = {
    'AUTOCOMMIT': False,
}

if REDIS_CACHE_TYPE == 'django-redis-cache':
    RQ_QUEUES['django-redis-cache'] = {'USE_REDIS_CACHE': 'django-redis-cache'}

ROOT_URLCONF = 'tests_django_rq.urls'

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [os.path.join(BASE_DIR, "templates")],
        'APP_DIRS': False,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.debug',
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
            ],
            'loaders': [
                'django.template.loaders.filesystem.Loader',
                'django.template.loaders.app_directories.Loader',
            ],
        },
    },
]


MIDDLEWARE = (
    'django.middleware.common.CommonMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
)

MIDDLEWARE_CLASSES = MIDDLEWARE

AUTHENTICATION_BACKENDS = ('django.contrib.auth.backends.ModelBackend',)


# --- Adaptations for this project (not in django-rq's file) ------------------------------------------------------
# Every host and port above comes from tests_django_rq/redis_config.py, which reads the private Redis server the
# session started (tests_django_rq/redis_session.py): the machine's Redis at 127.0.0.1:6379 is never touched.
#
# DJANGO_RQ_SUITE_BASELINE=1 leaves django-rq's settings as they are (its own DjangoRQ, Worker and Job, no `queues`
# app): the same tests against django-rq's classes, to tell a failure of this app's classes from one of the suite.
BASELINE = os.environ.get('DJANGO_RQ_SUITE_BASELINE', '') not in ('', '0')

if not BASELINE:
    # This app, and the suite's own package as an app so that `queues` autodiscovers tests_django_rq/jobs.py,
    # which registers django-rq's test job functions as @queues.job functions (the worker runs no other).
    INSTALLED_APPS = [*INSTALLED_APPS, 'queues', 'tests_django_rq']

    # Every queue gets this app's queue class and the JSON serializer, as config/settings.py's RQ_QUEUES (the
    # project's queues.conf.RQQueues) gives them; except `test1`, whose own class is what django-rq's tests test
    # (QueueClassTest.test_for_queue, QueuesTest.test_get_queues_different_classes).
    for _name, _config in RQ_QUEUES.items():
        _config.setdefault('QUEUE_CLASS', 'queues.rqqueue.RQQueue')
        _config.setdefault('SERIALIZER', 'rq.serializers.JSONSerializer')

    # This app's worker, job and queue classes, as config/settings.py's RQ (django-rq's pages that take a queue index
    # build their queues with RQ["QUEUE_CLASS"] only); `RQ` keeps its AUTOCOMMIT. The tests that override RQ (or
    # RQ_QUEUES) get these classes added too, unless they name their own (tests_django_rq/conftest.py).
    RQ = {**RQ, 'WORKER_CLASS': 'queues.worker.Worker', 'JOB_CLASS': 'queues.job.RQJob',
          'QUEUE_CLASS': 'queues.rqqueue.RQQueue'}

    # `queues` reads its own settings: the queues its worker may run (every RQ_QUEUES name that is a queue on a real
    # Redis server: not the `url*` ones, at host:1234, nor `sentinel`, nor `django-redis` without django-redis
    # installed), and the one Redis server its worker takes jobs from: REDIS_CONFIG_1's, where every test that runs
    # a worker has its queues.
    _NOT_REAL = {'url', 'url_with_db', 'url_default_db', 'sentinel', 'django-redis', 'django-redis-cache'}
    QUEUES = {name: {} for name in RQ_QUEUES if name not in _NOT_REAL}
    QUEUES_REDIS = {'HOST': REDIS_CONFIG_1.host, 'PORT': REDIS_CONFIG_1.port, 'DB': REDIS_CONFIG_1.db}
    QUEUES_SHUTDOWN_GRACE = 5
