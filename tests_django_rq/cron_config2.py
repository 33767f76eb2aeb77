# Copied from django-rq (https://github.com/rq/django-rq), tests/cron_config2.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: only the package name `tests` -> `tests_django_rq` in imports and dotted paths.
"""
Cron configuration file #2 for testing the rqcron management command.
Contains different jobs for alternative test scenarios.
"""

from rq import cron

from .fixtures import say_hello

# Register a job with different arguments for testing
cron.register(say_hello, 'default', args=('from cron config2',), cron='*/2 * * * *')  # Every 2 minutes

# Register another job with a different interval
cron.register(say_hello, 'default', args=('every 10 seconds config2',), interval=10)
