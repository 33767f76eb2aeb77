"""The Lua scripts of the hot path, and the keys they use.

The scripts live in ``queues/lua``, one file per command as BullMQ lays them out (``add``, ``take``, ``finish``,
``extend``, ``stalled``), each with a header naming its KEYS and ARGV; shared pieces (the event writer, the priority
score, taking a job, retention and metrics) are in ``queues/lua/includes`` and pulled in by ``--- @include "x"``.
:func:`script` loads a command with its includes; :class:`QueueKeys` names every key once.

Keys, beside RQ's own (``rq:queue:<q>`` waiting list, ``rq:job:<id>`` hash, ``rq:scheduled:<q>``,
``rq:finished:<q>``, ``rq:failed:<q>``):

- ``rq:prioritized:<q>``: sorted set of prioritized job ids, score ``(priority - 1) * 2**32 + counter``
  (lower first, FIFO within a priority: BullMQ's scheme), counter in ``rq:prioritized-counter:<q>``.
  ``priority - 1`` keeps every score below 2**53, where a double (a Lua number, a sorted-set score) still
  counts in ones: ``priority * 2**32`` reaches 2**53 at the largest priority, and FIFO there was lost.
- ``rq:paused:<q>``: set while the queue is paused; workers take nothing from it (other queues flow).
- ``rq:limiter:<q>``: the start times of the last ``limiter.max`` jobs (a sliding window shared by every
  worker); ``rq:rate-limited:<q>``: set with an expiry by ``Queue.rate_limit(seconds)``.
- ``rq:marker:<q>``: a one-member sorted set a worker blocks on (``BZPOPMIN``) while it has nothing to
  do. Every add sets it; a worker that takes a job sets it again while more jobs wait, so idle workers
  wake one after another. A worker also wakes by itself when the next delayed job falls due.
- ``rq:events:<q>``: the queue's event stream (capped ``XADD MAXLEN ~``; see ``queues.events``), written by
  these scripts in the same step as the change each event reports.
- ``rq:metrics:<q>:completed`` / ``rq:metrics:<q>:failed``: hashes of jobs per epoch minute, plus ``total``;
  minutes past ``QUEUES_METRICS_MINUTES`` are dropped by the finish script.
- ``rq:wip:<q>``: RQ's started registry, here the active jobs: members ``<job id>:<lock token>`` scored by the
  lock's expiry (see ``queues.lifecycle``); ``rq:stalled-check:<q>``: one worker at a time checks for stalls;
  ``rq:stalled-candidates:<q>``: the members whose lock the last check found out of date (they stall if it still
  is at the next check).
- ``rq:dashboard:backlog:<q>``: the admin dashboard's waiting-count samples (see ``queues.dashboard``).

``rq:scheduled:<q>`` is RQ's scheduled registry, scored here to the microsecond (RQ scores whole
seconds): the worker promotes due jobs itself, inside the same script that takes the next job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

JOB_PREFIX = "rq:job:"
RESULTS_PREFIX = "rq:results:"
QUEUES_SET = "rq:queues"
PROMOTE_LIMIT = 1000  # delayed jobs promoted per queue per call; the rest on the next call

PUBLISH = """
-- KEYS: an events stream. ARGV: max length, then the event's field/value pairs. Never raises (pcall).
local ok = pcall(redis.call, 'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
return ok and 1 or 0
"""

LUA = Path(__file__).resolve().parent / "lua"
INCLUDE_RE = re.compile(r'^--- @include "([a-z_]+)"$', re.MULTILINE)
COMMANDS = ("add", "take", "finish", "extend", "stalled", "scheduler", "retain")  # queues/lua/<name>.lua


@cache
def source(name: str) -> str:
    """The Lua of ``queues/lua/<name>.lua`` with each ``--- @include "x"`` replaced by ``includes/x.lua``."""
    text = (LUA / f"{name}.lua").read_text()
    return INCLUDE_RE.sub(lambda match: (LUA / "includes" / f"{match.group(1)}.lua").read_text(), text)


_scripts: dict[tuple[int, str], Script] = {}


def script(connection: redis.Redis, name: str) -> Script:
    """The command ``name`` of ``queues/lua`` as a script of ``connection``, registered once per client."""
    return registered(connection, source(name))


def registered(connection: redis.Redis, source: str) -> Script:
    """The Lua ``source`` as a script of ``connection``, registered once per client (redis-py loads it on first
    use)."""
    key = (id(connection), source)
    found = _scripts.get(key)
    if found is None or found.registered_client is not connection:
        found = _scripts[key] = connection.register_script(source)
    return found


@dataclass(frozen=True)
class QueueKeys:
    wait: str
    prioritized: str
    scheduled: str
    marker: str
    priority_counter: str
    paused: str
    limiter: str
    rate_limited: str
    events: str
    metrics_completed: str
    metrics_failed: str
    backlog: str
    active: str
    completed: str
    failed: str
    stall_check: str
    stall_candidates: str

    @classmethod
    def of(cls, name: str) -> QueueKeys:
        return cls(
            wait=f"rq:queue:{name}",
            prioritized=f"rq:prioritized:{name}",
            scheduled=f"rq:scheduled:{name}",
            marker=f"rq:marker:{name}",
            priority_counter=f"rq:prioritized-counter:{name}",
            paused=f"rq:paused:{name}",
            limiter=f"rq:limiter:{name}",
            rate_limited=f"rq:rate-limited:{name}",
            events=f"rq:events:{name}",
            metrics_completed=f"rq:metrics:{name}:completed",
            metrics_failed=f"rq:metrics:{name}:failed",
            backlog=f"rq:dashboard:backlog:{name}",
            active=f"rq:wip:{name}",  # RQ's started registry: members '<job id>:<lock token>', scored by expiry
            completed=f"rq:finished:{name}",
            failed=f"rq:failed:{name}",
            stall_check=f"rq:stalled-check:{name}",
            stall_candidates=f"rq:stalled-candidates:{name}",
        )

    def for_take(self) -> list[str]:
        """KEYS of includes/take.lua for this queue (TAKE_KEYS of them)."""
        return [self.wait, self.prioritized, self.scheduled, self.marker, self.priority_counter, self.paused,
                self.limiter, self.rate_limited, self.events, self.active]

    def for_finish(self) -> list[str]:
        """KEYS 1-11 of finish.lua."""
        return [self.active, self.completed, self.failed, self.metrics_completed, self.metrics_failed, self.events,
                self.wait, self.prioritized, self.scheduled, self.marker, self.priority_counter]

    def for_stalled(self) -> list[str]:
        """KEYS of stalled.lua."""
        return [self.active, self.wait, self.prioritized, self.priority_counter, self.marker, self.events,
                self.failed, self.metrics_failed, self.stall_check, self.stall_candidates]

    def for_add(self) -> list[str]:
        return [self.wait, self.prioritized, self.scheduled, self.marker, self.priority_counter, QUEUES_SET,
                self.events]
