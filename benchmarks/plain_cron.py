"""Plain RQ's side of ``run.py``'s ``schedulers`` benchmark: a cron configuration for RQ 3's ``CronScheduler``.

Run the way RQ documents it (https://python-rq.org/docs/cron), from the project root:

    rq cron --url redis://127.0.0.1:<port>/0 benchmarks.plain_cron

It enqueues ``benchmarks.plain_jobs.tick`` onto the ``plain`` queue every second (RQ's cron enqueues an interval
job once when it starts, then again each time ``interval`` seconds have passed since its last enqueue); a plain
``rq worker plain`` runs them. RQ's cron enqueues with RQ's default (pickle) serializer, so that worker uses it too.
"""

from rq import cron

from benchmarks.plain_jobs import TICK_STAMPS, tick

cron.register(tick, queue_name="plain", kwargs={"key": TICK_STAMPS}, interval=1, name="bench-tick")
