"""The memory store: the Store contract kept in this process's memory, its reference
implementation (the contract suite is read against it) and the store of the engine's unit tests.

Runs are kept as JSON text, as a database keeps rows: every `load` parses a fresh `Run`, and a
run changed behind the store (a test's hand edit of `MemoryBacking.runs`) is reported as
StateError, as a damaged snapshot is. Queries read their own columns (status, workflow, parent,
creation time, due time, "waits for data"), never every snapshot.

Several `MemoryStore` objects may share one `MemoryBacking` (`MemoryStore(shared=other)`), each
then acting as one process does on the other stores: locks are reentrant per object and thread
and exclude every other object and thread; a claim held by one object is refused to the others.

Claims are leases with fencing tokens, timed by the backing's clock (inject a `FakeClock`). A
holder renews its leases automatically while it lives, as the other stores' renewal threads
do, so a live holder never loses one; `stop_renewing()` makes this object behave as a process
that was paused or cut off: its leases run out `lease_seconds` later by the clock, another
object may then take the run over with a greater token, and every save of that run from this
object is refused from then on. No thread of its own is needed for that: an expiry is computed
when a lease is looked at.

Not reachable from a store URL (`open_store`), on purpose: every `wfrun` command is a process
of its own, so a memory store behind `--store memory:` would lose each run the moment the
command that made it exits, and `wfrun resume` would never find it. Tests and programs that
build an `Engine` themselves construct one directly.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from wfrun.clock import Clock
from wfrun.errors import (
    ClaimLost,
    ConflictError,
    LeftoverRecords,
    NotFoundError,
    StateError,
    UsageError,
)
from wfrun.ids import RUN_ID_PATTERN, check_run_id
from wfrun.model import Run
from wfrun.store._jsonenc import encoder
from wfrun.store._memory_backing import (
    DEFAULT_LEASE_SECONDS,
    MemoryBacking,
    MemoryClaim,
    StoredRun,
)
from wfrun.store._memory_records import MemoryRecords
from wfrun.store._snapshot import run_from_json
from wfrun.store.abc import Durability, ExecutionClaim
from wfrun.store.queries import RunPage, RunSummary, has_suspension, newest_first, split_cursor

_snapshot_text = encoder(allow_nan=False)
_record_text = encoder(allow_nan=True, default=str)  # history and logs, as the file store's


class MemoryStore(MemoryRecords):
    """Runs in memory, shared with the store objects built over the same backing."""

    Backing = MemoryBacking

    def __init__(self, shared: MemoryStore | MemoryBacking | None = None, *,
                 clock: Clock | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        """A store over `shared`'s backing (another store's, or a `MemoryBacking`), or over a
        new one timed by `clock` whose leases last `lease_seconds`."""
        if isinstance(shared, MemoryStore):
            shared = shared.backing
        if shared is not None and (clock is not None or lease_seconds != DEFAULT_LEASE_SECONDS):
            raise ValueError("a shared backing has its own clock and lease length")
        self.backing: MemoryBacking = shared if shared is not None \
            else MemoryBacking(clock, lease_seconds)
        self._id = id(self)
        self._held: dict[str, int] = {}  # run -> token of a claim this object took and holds
        self._renewing = True  # False once this "process" stopped renewing its leases

    @property
    def lease_seconds(self) -> float:
        """How long a lease lasts once its holder stops renewing it."""
        return self.backing.lease_seconds

    multiprocess = False  # a forked process would change a copy of it

    def _describe(self, run_id: str) -> str:
        return f"memory store run {check_run_id(run_id)}"

    # -- runs ------------------------------------------------------------------------------

    def _row(self, run: Run, revision: int) -> StoredRun:
        data = run.to_dict()
        data["revision"] = revision
        try:
            text = _snapshot_text(data)
        except (TypeError, ValueError) as exc:
            raise StateError(f"cannot store run {run.run_id}: its state is not JSON ({exc}); "
                             "the previous state is intact") from None
        return StoredRun(revision, text, RunSummary.of(run), has_suspension(run), run.next_due())

    def _parse(self, run_id: str, stored: StoredRun) -> Run:
        """The run a row holds; StateError (naming it) if it is not a valid run."""
        run = run_from_json(stored.snapshot, run_id, self._describe(run_id))
        run.revision = stored.revision
        return run

    def _commit(self, run_id: str, row: StoredRun, events: list[str]) -> None:
        """Store the row, its due entry and its events (JSON text) together (call with the
        mutex held)."""
        backing = self.backing
        old = backing.runs.get(run_id)
        backing.runs[run_id] = row
        backing.set_due(run_id, old.due if old is not None else None, row.due)
        backing.history.setdefault(run_id, []).extend(events)
        backing.written = True

    def create(self, run: Run, events: Sequence[dict[str, Any]] = ()) -> None:
        check_run_id(run.run_id)
        row, texts = self._row(run, 1), [_record_text(e) for e in events]
        with self.backing.mutex:
            if run.run_id in self.backing.runs:
                raise ConflictError(f"run {run.run_id} already exists")
            if run.run_id in self.backing.history or run.run_id in self.backing.logs:
                raise LeftoverRecords(
                    f"run {run.run_id} cannot be created: the history or logs of an earlier run "
                    f"{run.run_id}, whose row is gone, are still kept; choose another run id")
            self._commit(run.run_id, row, texts)
        run.revision = 1

    def load(self, run_id: str, known: Run | None = None) -> Run:
        check_run_id(run_id)
        with self.backing.mutex:
            stored = self.backing.runs.get(run_id)
        if known is not None and stored is not None and stored.revision == known.revision:
            return known
        if stored is None:
            raise NotFoundError(f"no run {run_id} in the memory store")
        return self._parse(run_id, stored)

    def save(self, run: Run, events: Sequence[dict[str, Any]] = (), *,
             durability: Durability = Durability.COMMIT,
             release: ExecutionClaim | None = None) -> None:
        # memory survives what a process survives: every durability is met at once
        run_id = check_run_id(run.run_id)
        row, texts = self._row(run, run.revision + 1), [_record_text(e) for e in events]
        backing = self.backing
        with backing.mutex:
            token = self._held.get(run_id)
            if token is not None and backing.issued.get(run_id, 0) > token:
                raise ClaimLost(
                    f"{ClaimLost.taken_over(run_id)}: this one lost its lease (fencing token "
                    f"{token}), so its last change was not saved")
            stored = backing.runs.get(run_id)
            if stored is None:
                raise NotFoundError(f"no run {run_id} in the memory store")
            if stored.revision != run.revision:
                raise ConflictError(
                    f"run {run_id} changed while this command worked on it "
                    f"(revision {stored.revision}, expected {run.revision}); try again")
            self._commit(run_id, row, texts)
        run.revision += 1
        if release is not None:
            release.release()

    def exists(self, run_id: str) -> bool:
        check_run_id(run_id)
        with self.backing.mutex:
            return run_id in self.backing.runs

    def delete(self, run_id: str) -> None:
        check_run_id(run_id)
        backing = self.backing
        with self.lock(run_id), backing.mutex:
            run = self.load(run_id)  # NotFoundError if there is none, StateError if damaged
            if not run.finished:
                raise ConflictError(f"run {run_id} is {run.status}; only a finished run is deleted")
            if backing.live_lease(run_id) is not None:
                raise ConflictError(f"run {run_id} is busy: another process holds it")
            stored = backing.runs.pop(run_id)
            backing.set_due(run_id, stored.due, None)
            backing.history.pop(run_id, None)
            backing.logs.pop(run_id, None)
            backing.leases.pop(run_id, None)

    def run_ids(self, prefix: str = "") -> list[str]:
        with self.backing.mutex:
            found = [r for r in self.backing.runs if r.startswith(prefix)]
        return sorted(r for r in found if RUN_ID_PATTERN.fullmatch(r))

    def _rows(self) -> list[tuple[str, StoredRun]]:
        with self.backing.mutex:
            return sorted(self.backing.runs.items())

    def iter_runs(self) -> Iterator[Run | Exception]:
        for run_id, stored in self._rows():
            try:
                yield self._parse(run_id, stored)
            except StateError as exc:
                yield exc

    def check(self) -> tuple[int, list[dict[str, str]]]:
        runs, problems = super().check()
        with self.backing.mutex:  # history and logs of no run (its row removed by hand)
            orphans = sorted((set(self.backing.history) | set(self.backing.logs))
                             - set(self.backing.runs))
        problems.extend({"path": self._describe(run_id), "kind": "orphan", "severity": "note",
                         "reason": f"the history or logs of run {run_id} are kept, but its row "
                                   "is gone: no command reads them, and no run can be started "
                                   f"again as {run_id} while they are"} for run_id in orphans)
        return runs, problems

    # -- queries: the rows' columns first, then only the matching snapshots ---------------------

    def find_runs(self, statuses: Iterable[str] | None = None, workflow: str | None = None,
                  top_level: bool = True, limit: int | None = None,
                  before: str | None = None) -> RunPage:
        wanted = None if statuses is None else set(statuses)
        after = split_cursor(before) if before is not None else None
        rows = [(run_id, stored) for run_id, stored in self._rows()
                if (wanted is None or stored.summary.status in wanted)
                and (workflow is None or stored.summary.workflow == workflow)
                and not (top_level and stored.summary.parent is not None)
                and (after is None or newest_first(stored.summary) < after)]
        rows.sort(key=lambda row: newest_first(row[1].summary), reverse=True)
        cap = len(rows) if limit is None else max(limit, 0)
        runs: list[RunSummary] = []
        problems: list[Exception] = []
        seen = 0
        for run_id, stored in rows:  # a row that cannot be read is reported; the next fills in
            if len(runs) >= cap:
                break
            seen += 1
            try:
                runs.append(RunSummary.of(self._parse(run_id, stored)))
            except StateError as exc:
                problems.append(exc)
        return RunPage(runs, len(rows) - seen if limit is not None else 0, problems)

    def pending(self, workflow: str | None = None) -> tuple[list[Run], list[Exception]]:
        runs: list[Run] = []
        problems: list[Exception] = []
        for run_id, stored in self._rows():
            if stored.suspended and (workflow is None or stored.summary.workflow == workflow):
                try:
                    run = self._parse(run_id, stored)
                except StateError as exc:
                    problems.append(exc)
                    continue
                if has_suspension(run):
                    runs.append(run)
        return runs, problems

    def due(self, now: str, limit: int | None = None) -> list[str]:
        with self.backing.mutex:
            found = list(self.backing.due_ids(now))
        return found if limit is None else found[:max(limit, 0)]

    def reindex(self, run_id: str) -> None:
        check_run_id(run_id)  # a deleted run's entry went with its row
        with self.backing.mutex:
            stored = self.backing.runs.get(run_id)
            if stored is not None:
                old, stored.due = stored.due, self._parse(run_id, stored).next_due()
                self.backing.set_due(run_id, old, stored.due)

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Block until a due time is set or changed by any store object of this backing,
        `stop` is set, or `timeout` seconds pass."""
        self.backing.wait_for_work(timeout, stop)

    # -- state locks and execution claims (leases) ---------------------------------------------

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        check_run_id(run_id)
        return self.backing.locked(run_id, (self._id, threading.get_ident()))

    def claim(self, run_id: str) -> MemoryClaim | None:
        check_run_id(run_id)
        with self.backing.mutex:
            lease = self.backing.grant(run_id, self._id, self._renewing)
            if lease is None:
                return None
            self._held[run_id] = lease.token
        return MemoryClaim(self.backing, self._held, run_id, lease.token)

    def acquire_due(self, now: str, limit: int | None = None) -> list[ExecutionClaim]:
        """Claims of the runs due at `now`, in due order, skipping those another holder has."""
        claims: list[ExecutionClaim] = []
        with self.backing.mutex:
            for run_id in list(self.backing.due_ids(now)):
                if limit is not None and len(claims) >= limit:
                    break
                claim = self.claim(run_id)
                if claim is not None:
                    claims.append(claim)
        return claims

    def is_claimed(self, run_id: str) -> bool:
        check_run_id(run_id)
        with self.backing.mutex:
            return self.backing.live_lease(run_id) is not None

    def stop_renewing(self) -> None:
        """Behave as a process that was paused or cut off: the leases this object holds, and
        any it takes from now on, are no longer renewed and run out `lease_seconds` after now
        by the backing's clock (unless `renew()`d). Its saves of a run another object took
        over meanwhile are refused."""
        backing = self.backing
        with backing.mutex:
            self._renewing = False
            for run_id, token in self._held.items():
                lease = backing.leases.get(run_id)
                if lease is not None and lease.token == token and lease.expires is None:
                    lease.expires = backing.lease_end()

    # -- history and logs ----------------------------------------------------------------------

    def append_history(self, run_id: str, events: list[dict[str, Any]]) -> None:
        check_run_id(run_id)
        texts = [_record_text(e) for e in events]
        if texts:
            with self.backing.mutex:
                self.backing.history.setdefault(run_id, []).extend(texts)
                self.backing.written = True

    def read_history(self, run_id: str) -> list[dict[str, Any]]:
        check_run_id(run_id)
        with self.backing.mutex:
            texts = list(self.backing.history.get(run_id, ()))
        return [json.loads(text) for text in texts]

    def append_log(self, run_id: str, records: list[dict[str, Any]]) -> None:
        check_run_id(run_id)
        texts = [_record_text(r) for r in records]
        with self.backing.mutex:
            self.backing.add_logs(run_id, texts)

    def read_logs(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        check_run_id(run_id)
        with self.backing.mutex:
            kept = self.backing.logs.get(run_id, [])
            newer = kept[bisect.bisect_right(kept, cursor, key=lambda item: item[0]):]
        records = [json.loads(text) for _, text in newer]
        return records, (newer[-1][0] if newer else cursor)

    # -- runs copied from another store (`wfrun state copy`) -------------------------------------

    def has_state(self) -> bool:
        with self.backing.mutex:
            return self.backing.written

    def import_run(self, run: Run, history: list[dict[str, Any]],
                   logs: list[dict[str, Any]]) -> bool:
        run_id = check_run_id(run.run_id)
        if run.revision < 1:
            raise UsageError(f"run {run_id} has revision {run.revision}: only a run as a store "
                             "kept it can be imported")
        row = self._row(run, run.revision)
        texts = [_record_text(r) for r in logs]
        backing = self.backing
        with self.lock(run_id), backing.mutex:
            if run_id not in backing.runs:
                self._commit(run_id, row, [_record_text(e) for e in history])
                backing.add_logs(run_id, texts)
                return True
            stored = self.load(run_id)
        if stored != run:
            differs = (f"revision {stored.revision} ({stored.status}) where the copy is at "
                       f"revision {run.revision} ({run.status})"
                       if (stored.revision, stored.status) != (run.revision, run.status)
                       else "a different state at the same revision")
        elif self.read_history(run_id) != history:
            differs = "a different history"
        elif self.read_logs(run_id)[0] != logs:
            differs = "different log records"
        else:
            return False
        raise ConflictError(f"run {run_id} exists already in the memory store with {differs}; "
                            "it was left as it is")


__all__ = ["MemoryBacking", "MemoryClaim", "MemoryStore"]
