"""The dispatcher: sends due outbox effects exactly once, however many dispatchers run.

It never holds a database transaction open while it talks to another system:

1. claim: in one transaction, take due ``pending`` effects (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) and mark them ``in_flight`` with a fresh claim
   token, the dispatcher's name and the time; attempts += 1;
2. talk, on up to ``concurrency`` worker threads: read the target back first if the effect
   may already have happened; then **guard** — one short transaction that renews the claim
   only if this dispatcher still holds it, and settles versions (a newer version of the
   same thing supersedes this one; an older one still landing makes this one wait) — and
   only then send;
3. finish: in one transaction for every talk that has ended meanwhile (checking each claim
   token), record the attempts, the audit rows and the new states.

While it works, the dispatcher renews every claim it holds each ``heartbeat_s`` (one
statement). A claim not renewed for ``lease_s`` may be recovered by another dispatcher
(at once when its dispatcher's process is gone from this host): back to ``pending``,
read back first, and not before the longest time a request sent under the old claim could
still take to land (``http.longest_request_s`` after the last renewal, plus
``read_back_after_s``). Because the guard renews atomically right before each send, a
dispatcher whose claim was taken over never sends: the effect goes out once.

Failures are classified by class (``connectors/errors.py``, from the per-operation table in
``connectors/failures.py``): transient (not sent) → retry with capped exponential backoff
and full jitter; permanent (rejected) → parked at once with an owned exception; ambiguous
(or anything unexpected) → retry no sooner than ``read_back_after_s``, reading the target
back before any resend, because Khaos does not de-duplicate.

The package's modules: ``running`` (``Dispatcher``: the loop and the talk), ``workers``
(the worker threads and their queues), ``claims`` (claim, renew, recover, guard),
``sqlite_guard`` (the guard's common case on SQLite, several workers' in one commit),
``recording`` (finish: attempts, audit, states, parking) and ``records`` (what they pass
between them, the backoff).
"""

from __future__ import annotations

from acs_khaos_dagster.store.dispatcher.records import (
    DEFER_S,
    NOT_SENT_OUTCOMES,
    RECORD_WITHIN_S,
    Claim,
    DispatchReport,
    Talked,
    backoff_delay,
    owner_is_dead,
)
from acs_khaos_dagster.store.dispatcher.running import Dispatcher

__all__ = [
    "DEFER_S",
    "NOT_SENT_OUTCOMES",
    "RECORD_WITHIN_S",
    "Claim",
    "DispatchReport",
    "Dispatcher",
    "Talked",
    "backoff_delay",
    "owner_is_dead",
]
