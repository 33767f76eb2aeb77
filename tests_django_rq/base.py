# Copied from django-rq (https://github.com/rq/django-rq), tests/base.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: only the package name `tests` -> `tests_django_rq` in imports and dotted paths.
from typing import Any

from django.test import TestCase
from redis import Redis


class DjangoRQTestCase(TestCase):
    """Base test case for django-rq tests with common assertion helpers."""

    def assert_connection_kwargs(self, connection: Redis, config: dict[str, Any]) -> None:
        """
        Assert that connection pool kwargs match expected configuration.

        Args:
            connection: Redis connection object
            config: Dict with config keys (either HOST/PORT/DB or lowercase equivalents)

        Examples:
            # With settings-based config (HOST/PORT/DB keys)
            config = QUEUES['default']
            queue = get_queue('default')
            self.assert_connection_kwargs(queue.connection, config)

            # With explicit kwargs
            self.assert_connection_kwargs(connection, {
                'host': 'localhost',
                'port': 6379,
                'db': 0
            })
        """
        connection_kwargs = connection.connection_pool.connection_kwargs

        # If config has HOST/PORT/DB keys (from settings.RQ_QUEUES)
        if 'HOST' in config:
            self.assertEqual(connection_kwargs['host'], config['HOST'])
            self.assertEqual(connection_kwargs['port'], config['PORT'])
            self.assertEqual(connection_kwargs['db'], config.get('DB', 0))
        else:
            # Direct comparison for explicit kwargs
            for key, value in config.items():
                self.assertEqual(connection_kwargs[key], value)
