"""django-rq's own tests against this app's job, queue and worker classes (not part of django-rq's tests).

- The Redis server is the session's private one, started before the settings load (``redis_session.py``, loaded
  by ``pytest.ini``): django-rq's tests would otherwise use localhost:6379, the machine's Redis, which this suite
  never touches (``redis_config.py`` refuses to load without the private server).
- The settings (``settings.py``) give every queue ``queues.rqqueue.RQQueue`` and ``RQ`` this app's worker and job
  classes. Many of django-rq's tests override ``RQ`` (for ``AUTOCOMMIT`` / ``COMMIT_MODE``) or ``RQ_QUEUES`` (a
  queue's connection) and would silently fall back to django-rq's own classes: ``override_settings`` is wrapped
  here so that such an override gets this app's classes (and a queue the JSON serializer) too, unless it names its
  own (``WORKER_CLASS``, ``JOB_CLASS``, a queue's ``QUEUE_CLASS``), as ``WorkerClassTest.test_custom_class`` does.
- ``skips.py`` lists the tests that contradict this app's design, each with its reason; they are marked skipped.
- django-rq's helper ``utils.get_queue_index`` asserts that two connection pools' ``connection_kwargs`` are equal;
  redis-py 8 puts per-pool objects in them (``maint_notifications_pool_handler``, ``maint_notifications_config``,
  ``himport_registry``) that compare by identity, so it failed for every pool (as django-rq's own CI would with
  redis-py 8.1). It is replaced here, before the test modules import it, by the same function comparing those
  objects by type (django-rq's helper already works around an older redis-py bug the same way).
- ``DJANGO_RQ_SUITE_BASELINE=1`` turns all of this off but the private server: django-rq's tests against its own
  classes, to tell a failure of this app's classes from a failure of the suite itself (version drift).
"""

from __future__ import annotations

import os
import unittest
import warnings
from pathlib import Path
from typing import Any

import pytest
from django.test import SimpleTestCase
from django.test.utils import override_settings

from tests_django_rq import utils as suite_utils
from tests_django_rq.skips import BY_DESIGN, SKIPS

BASELINE = os.environ.get("DJANGO_RQ_SUITE_BASELINE", "") not in ("", "0")
PROJECT = Path(__file__).resolve().parent.parent
RQ_CLASSES = {"WORKER_CLASS": "queues.worker.Worker", "JOB_CLASS": "queues.job.RQJob"}
QUEUE_CLASS = "queues.rqqueue.RQQueue"
SERIALIZER = "rq.serializers.JSONSerializer"  # as the project's RQ_QUEUES (queues.conf.RQQueues) gives every queue


def with_app_classes(options: dict[str, Any]) -> dict[str, Any]:
    """``override_settings`` options with this app's classes added where the override names none."""
    adapted = dict(options)
    if isinstance(adapted.get("RQ"), dict):
        adapted["RQ"] = {**RQ_CLASSES, **adapted["RQ"]}
    if isinstance(adapted.get("RQ_QUEUES"), dict):
        adapted["RQ_QUEUES"] = {
            name: {"QUEUE_CLASS": QUEUE_CLASS, "SERIALIZER": SERIALIZER, **config} if isinstance(config, dict) else config
            for name, config in adapted["RQ_QUEUES"].items()
        }
    return adapted


if not BASELINE:
    _enable = override_settings.enable

    def _enable_with_app_classes(self: override_settings) -> None:
        self.options = with_app_classes(self.options)
        _enable(self)

    override_settings.enable = _enable_with_app_classes  # type: ignore[method-assign]


PER_POOL_KWARGS = ("maint_notifications_pool_handler", "maint_notifications_config", "himport_registry")


def _comparable(kwargs: dict[str, Any]) -> dict[str, Any]:
    comparable = dict(kwargs)
    for key in PER_POOL_KWARGS:
        if key in comparable:
            comparable[key] = type(comparable[key])
    retry = comparable.get("retry")
    if retry is not None:  # the same Retry settings, built per pool (django-rq's helper compares their __dict__)
        comparable["retry"] = (type(retry), type(getattr(retry, "_backoff", None)),
                               getattr(retry, "_retries", None))
    return comparable


def get_queue_index(name: str = "default") -> int | None:
    """django-rq's ``tests_django_rq.utils.get_queue_index``, with redis-py 8's per-pool objects compared by type."""
    connection_kwargs = suite_utils.get_connection(name).connection_pool.connection_kwargs
    for i in range(0, 100):
        try:
            queue = suite_utils.get_queue_by_index(i)
        except AttributeError:
            continue
        if queue.name == name:
            pool_kwargs = queue.connection.connection_pool.connection_kwargs
            assert _comparable(pool_kwargs) == _comparable(connection_kwargs)
            return i
    return None


suite_utils.get_queue_index = get_queue_index


def node_id(item: pytest.Item) -> str:
    """The item's node id relative to /work/main (``tests_django_rq/tests.py::QueuesTest::test_async``), whatever
    the rootdir."""
    return "::".join([item.path.resolve().relative_to(PROJECT).as_posix(), *item.nodeid.split("::")[1:]])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under Django's test runner (django-rq's CI) a plain unittest.TestCase may use the database; pytest-django blocks
    # it. The worker a test runs touches the process's database connection after each job (close_old_connections),
    # which the blocker turns into a crash of the worker once an earlier test opened that connection
    # (UtilsTest.test_requeue_job). Such tests get the database, as under Django's runner.
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, unittest.TestCase) and not issubclass(cls, SimpleTestCase):
            item.add_marker(pytest.mark.django_db)
    if BASELINE:
        return
    # test_prometheus_metrics.py patches django_rq.settings.QUEUES with its own module-level RQ_QUEUES, past
    # override_settings: give its queues this app's class and serializer in place, as above.
    for module in {item.module for item in items if getattr(item, "module", None) is not None}:
        queues_setting = getattr(module, "RQ_QUEUES", None)
        if isinstance(queues_setting, dict) and module.__name__.startswith("tests_django_rq."):
            queues_setting.update(with_app_classes({"RQ_QUEUES": queues_setting})["RQ_QUEUES"])
    seen = set()
    for item in items:
        reason = SKIPS.get(node_id(item))
        if reason is not None:
            seen.add(node_id(item))
            why = ("by design of this app" if node_id(item) in BY_DESIGN
                   else "not this app (fails with django-rq's own classes)")
            item.add_marker(pytest.mark.skip(reason=f"{why}: {reason}"))
    collected_files = {node_id(item).split("::")[0] for item in items}
    stale = [test for test in SKIPS if test not in seen and test.split("::")[0] in collected_files
             and not config.getoption("keyword") and not config.getoption("markexpr")]
    if stale:
        warnings.warn(f"tests_django_rq/skips.py lists tests that were not collected: {', '.join(stale)}",
                      pytest.PytestWarning, stacklevel=1)
