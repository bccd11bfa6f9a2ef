"""Named places where a test can kill the process, to prove nothing is lost across a crash.

Two triggers, both off unless a test turns them on:

- the environment variable ``ACS_KHAOS_CRASH_AT`` (comma-separated names, each optionally
  ``name:N`` for the N-th time that point is reached) makes the process die with
  ``os._exit(137)`` — like ``kill -9``: no ``finally`` blocks, no commit, no flush. Use it in a
  subprocess.
- an in-process hook (``crash_at(name)`` context manager) that raises ``SimulatedCrash``
  (a ``BaseException``, so ordinary ``except Exception`` handlers do not swallow it).

Points used by the outbox: ``after_record`` (effect committed, nothing sent),
``after_claim`` (marked in flight, nothing sent), ``after_send`` (sent, nothing recorded),
``before_mark_done`` (inside the transaction that marks it done, before the commit).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

ENV_VAR = "ACS_KHAOS_CRASH_AT"
EXIT_CODE = 137
POINTS = ("after_record", "after_claim", "after_send", "before_mark_done")

_hits: Counter[str] = Counter()
_lock = threading.Lock()
_hooks: dict[str, int] = {}


class SimulatedCrash(BaseException):
    """Raised by an in-process crash point."""


def _env_targets() -> dict[str, int]:
    raw = os.environ.get(ENV_VAR, "")
    targets: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, nth = item.partition(":")
        targets[name] = int(nth) if nth else 1
    return targets


def crashpoint(name: str) -> None:
    """Die here if a test asked for it; otherwise do nothing (cheap)."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(POINTS)}")
    env = _env_targets()
    if not env and not _hooks:
        return
    with _lock:
        _hits[name] += 1
        count = _hits[name]
    if env.get(name) == count:
        sys.stderr.write(f"crashpoint {name} reached (hit {count}): exiting {EXIT_CODE}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
    if _hooks.get(name) == count:
        raise SimulatedCrash(name)


@contextmanager
def crash_at(name: str, nth: int = 1) -> Iterator[None]:
    """In-process: raise ``SimulatedCrash`` the ``nth`` time ``name`` is reached in the block."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    with _lock:
        _hits[name] = 0
        _hooks[name] = nth
    try:
        yield
    finally:
        with _lock:
            _hooks.pop(name, None)
            _hits[name] = 0
