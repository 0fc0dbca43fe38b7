"""Bounded waits for what a server shares.

The generation queue: a local LLM (llama.cpp, transformers) is not thread-safe, so each loaded
copy runs one generation at a time, handed out first come, first served, with a bound on how many
requests may wait (the rest are refused with Busy: 503 + Retry-After).

Ingest slots: each upload or re-ingest runs a parser process and, for scans, OCR models; a few at
once across all knowledge bases, the rest wait their turn (bounded, like the queue)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kbqa.errors import Busy

Message = dict[str, str]


class GenerationQueue:
    """Slots for one loaded LLM's copies, handed out first come, first served.

    admit() registers a request that will generate (refused with Busy past max_waiting requests not
    yet generating); Ticket.acquire() waits for a slot; Ticket.release() frees it."""

    def __init__(self, slots: int, max_waiting: int, timeout_s: float) -> None:
        self._cond = threading.Condition()
        self._free = list(range(slots))
        self._slots = slots
        self._waiting: deque[Ticket] = deque()
        self._pending = 0  # admitted, not yet generating
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self.closed = False
        self._seconds = 2.0  # running mean of a generation's length, for Retry-After

    def admit(self) -> Ticket:
        with self._cond:
            if self.closed:
                raise Busy("the server is shutting down", retry_after=10, code="stopping")
            if self._pending >= self.max_waiting + len(self._free):  # at most max_waiting wait for a copy
                waiting = self._pending - len(self._free)  # (the others take the free copies)
                raise Busy(
                    f"all {self._slots} LLM instance(s) are busy and {waiting} requests are waiting; try again shortly",
                    retry_after=self.retry_after(), code="full", seconds=self.retry_after(),
                )
            self._pending += 1
            return Ticket(self)

    def retry_after(self) -> float:
        return max(1.0, math.ceil(self._seconds * (1 + len(self._waiting)) / self._slots))

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"instances": self._slots, "generating": self._slots - len(self._free), "waiting": len(self._waiting),
                    "admitted": self._pending, "max_queue": self.max_waiting, "mean_generation_s": round(self._seconds, 2)}

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Ticket:
    """One request's place in a GenerationQueue."""

    def __init__(self, queue: GenerationQueue) -> None:
        self._queue = queue
        self.slot: int | None = None
        self.done = False
        self.started_at: float | None = None
        # gone(): whether the request's client has left (its wait and generation then end: Busy client_gone);
        # told(n): the place in the queue, each second of a wait that happens before the reply exists (a follow-up's
        # rewrite by the LLM). Both are called with the queue's lock held: keep them quick
        self.gone: Callable[[], bool] | None = None
        self.told: Callable[[int], None] | None = None

    def position(self) -> int:
        """How many requests are ahead of this one (0: generating, or next)."""
        q = self._queue
        with q._cond:
            if self.slot is not None or self not in q._waiting:
                return 0
            return q._waiting.index(self)

    def wait(self, every: float = 1.0) -> Iterator[int]:
        """Wait for a slot, telling the place in the queue (0 = next) every `every` seconds; after the
        queue's time limit give up with Busy."""
        deadline = time.monotonic() + self._queue.timeout_s
        while not self.acquire(timeout=max(0.0, min(every, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                with self._queue._cond:
                    raise self._give_up()
            yield self.position()

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait up to timeout seconds (None: the queue's limit, then Busy) for a slot; True once held."""
        q = self._queue
        with q._cond:
            if self.slot is not None:
                return True
            if self.done:
                raise Busy("this request's turn was given up")
            if self not in q._waiting:
                q._waiting.append(self)
            deadline = time.monotonic() + (q.timeout_s if timeout is None else timeout)
            while not (q._free and q._waiting[0] is self):
                if q.closed:
                    self._leave()
                    raise Busy("the server is shutting down", retry_after=10, code="stopping")
                if self.gone is not None and self.gone():
                    self._leave()
                    raise client_gone()
                if self.told is not None:
                    self.told(q._waiting.index(self))
                left = deadline - time.monotonic()
                if left <= 0:
                    if timeout is not None:
                        return False
                    raise self._give_up()
                q._cond.wait(min(left, 1.0))
            q._waiting.popleft()
            self.slot = q._free.pop()
            q._pending -= 1
            self.started_at = time.monotonic()
            q._cond.notify_all()
            return True

    def _give_up(self) -> Busy:
        """Leave the queue after its time limit (the queue's lock held); the error to raise."""
        q = self._queue
        self._leave()
        return Busy(f"waited {q.timeout_s:.0f} s for the LLM; try again later", retry_after=q.retry_after(), code="waited", seconds=round(q.timeout_s))

    def _leave(self) -> None:
        q = self._queue
        if self in q._waiting:
            q._waiting.remove(self)
        if not self.done and self.slot is None:
            q._pending -= 1
        self.done = True
        q._cond.notify_all()

    def release(self) -> None:
        q = self._queue
        with q._cond:
            if self.slot is not None:
                q._free.append(self.slot)
                self.slot = None
                if self.started_at is not None:
                    q._seconds = 0.8 * q._seconds + 0.2 * (time.monotonic() - self.started_at)
                self.done = True
                q._cond.notify_all()
            elif not self.done:
                self._leave()


def client_gone() -> Busy:
    return Busy("the client went away; its turn with the LLM was given up", code="client_gone")


class QueuedLLM:
    """An LLM backend that is not thread-safe (llama.cpp, transformers) behind a GenerationQueue:
    its copies generate one at a time each; everything else (name, template, context,
    count_tokens: tokenizing only reads the vocabulary) passes through to the first copy."""

    def __init__(self, copies: list[Any], queue: GenerationQueue, busy: Callable[[], bool] | None = None) -> None:
        self.copies = copies
        self.queue = queue
        self.busy = busy  # whether other heavy work (an ingest) runs in this process now: a copy that can share cores then does

    def __getattr__(self, name: str) -> Any:
        return getattr(self.copies[0], name)

    def stream(self, messages: list[Message], ticket: Ticket | None = None, keep_slot: bool = False, **generation: Any) -> Iterator[str]:
        """Wait for a free copy (with ticket: the request's own place in the queue), then generate.
        The slot is freed when the generation ends, fails, or the consumer stops iterating; with
        keep_slot it stays the ticket's when the generation ends well, for the request's next one (a follow-up's
        rewrite, then its answer: one place in the queue, held from the first to the last; found by review: the
        rewrite took a second place, which counted twice against server.max_queue and let later questions pass)."""
        ticket = ticket or self.queue.admit()
        kept = False
        try:
            ticket.acquire()
            assert ticket.slot is not None
            copy = self.copies[ticket.slot]
            if self.busy is not None and hasattr(copy, "share_cores"):
                copy.share_cores(self.busy())
            pieces = copy.stream(messages, **generation)
            try:
                for piece in pieces:
                    if self.queue.closed:
                        raise Busy("the server is shutting down; the answer was cut short", retry_after=10, code="stopping")
                    if ticket.gone is not None and ticket.gone():
                        raise client_gone()
                    yield piece
            finally:
                close = getattr(pieces, "close", None)
                if close:
                    close()
            kept = keep_slot
        finally:
            if not kept:
                ticket.release()  # a request's ticket serves its generations: its answer (and a rewrite before it)


class IngestSlots:
    """At most `slots` ingests at once, one per knowledge base (four uploads of a 10-page scan side
    by side took 5.4 GB, one parser process and OCR models each). Waiters go first come, first
    served, except that one whose knowledge base is being ingested lets the next one pass; up to
    `8 * slots` wait, each at most timeout_s, the rest are refused with Busy."""

    def __init__(self, slots: int, timeout_s: float) -> None:
        self._cond = threading.Condition()
        self.slots, self.timeout_s = slots, timeout_s
        self.max_waiting = 8 * slots
        self._active: set[str] = set()  # knowledge bases being ingested
        self._queue: deque[object] = deque()  # waiters, in arrival order
        self._keys: dict[object, str] = {}
        self.closed = False

    def _turn(self, me: object) -> bool:
        if len(self._active) >= self.slots:
            return False
        first = next((w for w in self._queue if self._keys[w] not in self._active), None)
        return first is me

    @contextmanager
    def held(self, key: str, waiting: Callable[[int], None] | None = None) -> Iterator[None]:
        """Hold a slot for knowledge base `key` for the block; while waiting, waiting(ingests running)
        is called every second."""
        deadline = time.monotonic() + self.timeout_s
        me = object()
        with self._cond:
            if self.closed:
                raise Busy("the server is shutting down", retry_after=10, code="stopping")
            if len(self._queue) >= self.max_waiting:
                raise Busy(f"{len(self._active)} ingests are running and {len(self._queue)} uploads wait for their turn; try again later",
                           retry_after=60, code="ingests_full", running=len(self._active), waiting=len(self._queue))
            self._queue.append(me)
            self._keys[me] = key
            try:
                while not self._turn(me):
                    if self.closed:
                        raise Busy("the server is shutting down", retry_after=10, code="stopping")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Busy(f"waited {self.timeout_s:.0f} s for other ingests to finish (server.max_ingests); try again later",
                                   retry_after=60, code="ingest_waited", seconds=round(self.timeout_s))
                    self._cond.wait(min(left, 1.0))
                    if waiting is not None and not self._turn(me):
                        running = len(self._active)
                        self._cond.release()  # the caller's progress report runs without the lock
                        try:
                            waiting(running)
                        finally:
                            self._cond.acquire()
            finally:
                self._queue.remove(me)
                del self._keys[me]
                self._cond.notify_all()  # the next in line may go now (or pass this one's place on)
            self._active.add(key)
        try:
            yield
        finally:
            with self._cond:
                self._active.discard(key)
                self._cond.notify_all()

    def running(self) -> bool:
        """Whether an ingest holds a slot now."""
        with self._cond:
            return bool(self._active)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"max_ingests": self.slots, "running": len(self._active), "waiting": len(self._queue)}

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
