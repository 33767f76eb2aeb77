"""Jobs of the notifications app. Each takes ids, never rows: it reads what it needs again."""

import logging

from queues import current_job, job

logger = logging.getLogger(__name__)


@job("email", name="notifications.ping")
def ping(message: str = "pong") -> dict[str, str]:
    """A job that only logs and returns its message: add it to see a worker run a job end to end."""
    running = current_job()
    logger.info("ping job %s (attempt %s): %s", running.id if running else "-",
                (running.attempts_made + 1) if running else "-", message)
    return {"message": message}
