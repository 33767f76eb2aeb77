"""The exceptions ``queues`` raises. Catch these; the base class is not raised directly."""

from django.core.exceptions import ImproperlyConfigured


class QueuesError(Exception):
    """Base class of this app's errors. Do not raise directly."""


class InvalidQueue(ImproperlyConfigured, QueuesError):
    """A queue name that ``QUEUES`` does not define, or a ``QUEUES`` setting with errors."""


class UnknownJob(QueuesError, LookupError):
    """A job name or function that no ``@job`` decorator registered."""


class InvalidJobOptions(QueuesError, ValueError):
    """A job option with a value outside what it accepts."""


class InvalidJobData(QueuesError, ValueError):
    """Job data that is not small JSON: refused at enqueue, before anything reaches Redis."""


class PayloadTooLarge(InvalidJobData):
    """Job data over ``QUEUES_MAX_PAYLOAD_BYTES`` once serialized."""


class JobRefused(QueuesError):
    """A worker refused to run a job found in Redis (not registered, or not JSON)."""


class UnrecoverableError(QueuesError):
    """Raise it in a job to fail the job at once, without its remaining attempts (BullMQ's ``UnrecoverableError``)."""


class QueueBusy(QueuesError):
    """A destructive action refused because the queue has active jobs (``obliterate(force=True)`` overrides)."""


class InvalidScheduler(QueuesError, ValueError):
    """A job scheduler's id, rule (every / pattern), dates or limit are not valid; the message names the fix."""
