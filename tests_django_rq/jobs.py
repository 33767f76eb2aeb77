"""django-rq's test job functions, registered as ``@queues.job`` functions (not part of django-rq's tests).

This app's worker runs registered ``@job`` functions only; anything else fails with ``JobRefused``. django-rq's
tests enqueue plain module-level functions, so they are registered here, without editing their modules: the
settings install ``tests_django_rq`` as an app, and ``queues`` imports every app's ``jobs`` module at start-up
(``QueuesConfig.ready``), in the test process and in the worker processes it forks alike. Registration changes
nothing about a function (``queues.job`` returns it as it is, with a ``queues_job`` attribute).

Functions defined inside a test (``DecoratorTest``'s ``@job`` functions) cannot be registered: a worker imports a
job's function by its dotted path. Those tests only enqueue them.
"""

from __future__ import annotations

import queues

from . import fixtures, tests, views

for _function in (fixtures.access_self, fixtures.failing_job, fixtures.say_hello, tests.divide, tests.long_running_job,
                  views.say_hello):
    queues.job("default")(_function)
