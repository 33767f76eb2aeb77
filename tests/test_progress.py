"""Progress reported from inside a job: stored on the job and published on the queue's event stream."""

from __future__ import annotations

import redis

from queues import get_queue
from queues.events import read
from queues.worker import SimpleWorker
from tests.helpers import last_failure, signals_restored
from tests.testapp.jobs import report_progress


def run_burst() -> None:
    with signals_restored():
        SimpleWorker(["email"]).work(burst=True)


def test_progress__stored_on_the_job_and_published_in_order(redis_client: redis.Redis) -> None:
    """Store the last progress on the job and publish every value, in order, as progress events."""
    handle = get_queue("email").add(report_progress, {"steps": [10, 55.5, {"sent": 3, "of": 4}]})
    assert handle.progress == 0
    run_burst()
    assert handle.get_state() == "completed"
    assert handle.progress == {"sent": 3, "of": 4}
    events = [event for event in read(redis_client, "email") if event["event"] == "progress"]
    assert [event["data"] for event in events] == [10, 55.5, {"sent": 3, "of": 4}]
    assert {event["job_id"] for event in events} == {handle.id}


def test_progress__out_of_range_value_fails_the_job_with_a_clear_reason(redis_client: redis.Redis) -> None:
    """Refuse progress that is not 0–100 nor a small dict, failing the job with the reason."""
    handle = get_queue("email").add(report_progress, {"steps": [150]}, attempts=1)
    run_burst()
    assert handle.get_state() == "failed"
    assert "progress must be a number from 0 to 100 or a small dict, not 150" in last_failure(handle.id)
