# Copied from django-rq (https://github.com/rq/django-rq), tests/cron_config1.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: only the package name `tests` -> `tests_django_rq` in imports and dotted paths.
"""
Cron configuration file #1 for testing the rqcron management command.
Contains 2 jobs for the main test.
"""

from rq import cron

from .fixtures import say_hello

# Register a simple cron job that runs every minute
cron.register(say_hello, 'default', args=('from cron config1',), cron='* * * * *')

# Register another job that runs every 5 seconds using interval
cron.register(say_hello, 'default', args=('every 5 seconds config1',), interval=5)
