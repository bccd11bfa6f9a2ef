"""The dispatcher's worker threads: each takes a claim from one queue, talks to the target
and puts what the talk came to on another.

One ``put`` per send and one ``get`` per outcome (``queue.SimpleQueue``, in C) rather than
a ``Future`` per send, ``ThreadPoolExecutor.submit`` and ``wait(FIRST_COMPLETED)`` over
every send in flight: on the release path the dispatcher's own thread is the busiest
thread of the process, and those cost it about a tenth of a millisecond per effect.

What ``ThreadPoolExecutor.shutdown(wait=True, cancel_futures=True)`` promised still holds:
after ``stop`` no talk starts, every talk already started has ended, and no worker is
left behind. An exception raised by a talk (a simulated crash) reaches the dispatcher's
thread from ``collect``, as ``Future.result`` raised it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue

from acs_khaos_dagster.store.dispatcher.records import Claim, Talked

# What a worker hands back: the claim, and the talk's outcome or what it raised.
_Ended = tuple[Claim, Talked | None, BaseException | None]


class Workers:
    """Up to ``width`` threads (started as they are first needed), talking one claim each."""

    def __init__(self, talk: Callable[[Claim], Talked], width: int, name: str = "outbox") -> None:
        self._talk = talk
        self._width = width
        self._name = name
        self._todo: SimpleQueue[Claim | None] = SimpleQueue()
        self._ended: SimpleQueue[_Ended] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._given = 0  # handed to the workers, outcome not yet collected
        self._stopping = False

    def start(self, claim: Claim) -> None:
        """Talk about ``claim`` on a free worker (the caller keeps at most ``width`` given)."""
        if len(self._threads) < min(self._width, self._given + 1):
            thread = threading.Thread(
                target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._given += 1
        self._todo.put(claim)

    def collect(self, timeout: float) -> list[tuple[Claim, Talked]]:
        """Every talk that has ended, waiting up to ``timeout`` seconds for the first.

        Re-raises the first exception a talk raised (nothing else is then collected: what
        ended meanwhile stays claimed, for recovery to read back).
        """
        try:
            first = self._ended.get(timeout=timeout) if timeout > 0 else self._ended.get_nowait()
        except Empty:
            return []
        ended = [first]
        while True:
            try:
                ended.append(self._ended.get_nowait())
            except Empty:
                break
        self._given -= len(ended)
        out: list[tuple[Claim, Talked]] = []
        for claim, talked, error in ended:
            if error is not None:
                raise error
            assert talked is not None
            out.append((claim, talked))
        return out

    def stop(self) -> None:
        """Start no more talks; wait for those started; end every worker."""
        self._stopping = True
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (claim := self._todo.get()) is not None:
            if self._stopping:
                continue  # given but not started before the stop: it is not started now
            try:
                self._ended.put((claim, self._talk(claim), None))
            except BaseException as exc:  # handed to the dispatcher's thread, which raises it
                self._ended.put((claim, None, exc))
