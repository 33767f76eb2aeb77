# Copied from django-rq (https://github.com/rq/django-rq), tests/fixtures.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: only the package name `tests` -> `tests_django_rq` in imports and dotted paths.
from rq import get_current_job
from rq.job import Job
from rq.worker import Worker

from django_rq.queues import DjangoRQ


class DummyJob(Job):
    pass


class DummyQueue(DjangoRQ):
    """Just Fake class for the following test"""


class DummyWorker(Worker):
    pass


try:
    from rq_scheduler import Scheduler

    class DummyScheduler(Scheduler):
        pass

except ImportError:
    pass


def access_self():
    job = get_current_job()
    assert job
    return job.id


def failing_job():
    raise ValueError


def say_hello(name='World'):
    """Simple test function for cron job testing."""
    return f"Hello, {name}!"
