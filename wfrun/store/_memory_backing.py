"""What the memory store's objects share, as processes share a database: its tables, one mutex,
the clock leases expire by, the state locks and the leases (see `wfrun.store.memory`)."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from wfrun.clock import Clock, SystemClock
from wfrun.errors import ConflictError
from wfrun.store.abc import ExecutionClaim
from wfrun.store.queries import RunSummary

DEFAULT_LEASE_SECONDS = 30.0
LOCK_TIMEOUT_SECONDS = 30.0


class StoredRun:
    """One row of the runs table: the snapshot as JSON text, its revision, and the columns the
    queries read instead of the snapshot (as the PostgreSQL store's row has them)."""

    __slots__ = ("due", "revision", "snapshot", "summary", "suspended")

    def __init__(self, revision: int, snapshot: str, summary: RunSummary, suspended: bool,
                 due: str | None) -> None:
        self.revision = revision
        self.snapshot = snapshot  # the run as JSON text (a test may damage it, as a hand edit)
        self.summary = summary
        self.suspended = suspended  # a step or iteration waits for data (`Store.pending`)
        self.due = due  # the run's entry in the due index (`Run.next_due()` when saved)


class Lease:
    """Who executes a run: the store object holding it, its fencing token, and until when it
    holds it (None: for as long as the holder lives, which renews it automatically)."""

    __slots__ = ("expires", "holder", "token")

    def __init__(self, holder: int, token: int, expires: datetime | None) -> None:
        self.holder = holder
        self.token = token
        self.expires = expires


class MemoryBacking:
    """The storage several `MemoryStore` objects share; each object acts as one process.

    Every table is guarded by `mutex`, held only for the few dictionary operations of one
    store call. `clock` is what leases expire by (inject a `FakeClock` to expire them in a
    test); `lease_seconds` how long a lease lasts once its holder stops renewing it;
    `lock_timeout` how long (real seconds) `lock` waits for another holder."""

    def __init__(self, clock: Clock | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.lease_seconds = lease_seconds
        self.lock_timeout = lock_timeout
        self.mutex = threading.RLock()
        self.runs: dict[str, StoredRun] = {}
        self.due_index: list[tuple[str, str]] = []  # (due time, run id), sorted
        self.history: dict[str, list[str]] = {}  # run -> its events, as JSON text
        self.logs: dict[str, list[tuple[int, str]]] = {}  # run -> (sequence, record as JSON)
        self.log_seq = 0
        self.leases: dict[str, Lease] = {}
        self.last_token = 0  # fencing tokens only grow, across every run
        self.issued: dict[str, int] = {}  # run -> the last token issued for it
        self.tokens: dict[str, dict[str, Any]] = {}  # start tokens by name, oldest first
        self.schedules: dict[str, tuple[int, str]] = {}  # workflow -> (revision, JSON text)
        self.manifests: dict[str, str] = {}  # digest -> the document as JSON text
        self.key: bytes | None = None
        self.written = False  # anything was ever stored (`Store.has_state`)
        self._locks: dict[str, list[Any]] = {}  # run -> [owner, depth]
        self._unlocked = threading.Condition(self.mutex)
        self._work = threading.Condition(self.mutex)
        self._work_seq = 0  # how many changes of a due time were committed

    # -- the due index (call with the mutex held) --------------------------------------------

    def set_due(self, run_id: str, old: str | None, new: str | None) -> None:
        """Move the run's due-index entry from `old` to `new` (either may be None)."""
        if old == new:
            return
        if old is not None:
            at = bisect.bisect_left(self.due_index, (old, run_id))
            if at < len(self.due_index) and self.due_index[at] == (old, run_id):
                del self.due_index[at]
        if new is not None:
            bisect.insort(self.due_index, (new, run_id))
            self._work_seq += 1
            self._work.notify_all()

    def due_ids(self, now: str) -> Iterator[str]:
        """Ids of the runs due at or before `now`, in due order."""
        end = bisect.bisect_right(self.due_index, (now, "\U0010ffff"))
        return (run_id for _, run_id in self.due_index[:end])

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Block until a due time is set or changed, `stop` is set, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self.mutex:
            seen = self._work_seq
            while self._work_seq == seen and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._work.wait(min(left, 0.05))  # `stop` is an Event of its own: look again

    def add_logs(self, run_id: str, texts: list[str]) -> None:
        """Append log records (JSON text), each with the next sequence number (call with the
        mutex held)."""
        if texts:
            kept = self.logs.setdefault(run_id, [])
            for text in texts:
                self.log_seq += 1
                kept.append((self.log_seq, text))
            self.written = True

    # -- leases (call with the mutex held) ---------------------------------------------------

    def live_lease(self, run_id: str) -> Lease | None:
        """The run's lease if it has not expired."""
        lease = self.leases.get(run_id)
        if lease is None or (lease.expires is not None and self.clock.now() >= lease.expires):
            return None
        return lease

    def lease_end(self) -> datetime:
        """When a lease renewed now runs out."""
        return self.clock.now() + timedelta(seconds=self.lease_seconds)

    def grant(self, run_id: str, holder: int, renewing: bool) -> Lease | None:
        """A new lease of the run with a greater fencing token than any before; None if a live
        lease exists."""
        if self.live_lease(run_id) is not None:
            return None
        self.last_token += 1
        self.issued[run_id] = self.last_token
        lease = Lease(holder, self.last_token, None if renewing else self.lease_end())
        self.leases[run_id] = lease
        return lease

    # -- state locks: reentrant per owner (a store object's thread), exclusive otherwise ----

    @contextmanager
    def locked(self, run_id: str, owner: tuple[int, int]) -> Iterator[None]:
        """Hold the run's state lock; ConflictError if another owner holds it past the
        timeout."""
        deadline = time.monotonic() + self.lock_timeout
        with self.mutex:
            while True:
                held = self._locks.get(run_id)
                if held is None:
                    self._locks[run_id] = [owner, 1]
                    break
                if held[0] == owner:
                    held[1] += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConflictError(
                        f"run {run_id} is busy: its state lock was held for over "
                        f"{self.lock_timeout:g}s; try again")
                self._unlocked.wait(left)
        try:
            yield
        finally:
            with self.mutex:
                held = self._locks[run_id]
                held[1] -= 1
                if held[1] == 0:
                    del self._locks[run_id]
                    self._unlocked.notify_all()


class MemoryClaim(ExecutionClaim):
    """A lease of one run held by one `MemoryStore` object, with its fencing token."""

    def __init__(self, backing: MemoryBacking, held: dict[str, int], run_id: str,
                 token: int) -> None:
        self._backing, self._held, self._run_id, self._token = backing, held, run_id, token

    @property
    def run_id(self) -> str:
        """The run this claim is on."""
        return self._run_id

    @property
    def token(self) -> int:
        """The fencing token: greater than every token issued before it for the run."""
        return self._token

    @property
    def lost(self) -> bool:
        """True once the lease is no longer this claim's (released, or taken over)."""
        with self._backing.mutex:
            lease = self._backing.leases.get(self._run_id)
            return lease is None or lease.token != self._token

    def renew(self) -> bool:
        """Extend the lease by the lease length from now; False if it was lost."""
        backing = self._backing
        with backing.mutex:
            lease = backing.leases.get(self._run_id)
            if lease is None or lease.token != self._token:
                return False
            if lease.expires is not None:
                lease.expires = backing.lease_end()
            return True

    def release(self) -> None:
        backing = self._backing
        with backing.mutex:
            lease = backing.leases.get(self._run_id)
            if lease is not None and lease.token == self._token:
                del backing.leases[self._run_id]
            if self._held.get(self._run_id) == self._token:
                del self._held[self._run_id]
