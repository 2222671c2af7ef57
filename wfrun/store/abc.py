"""The store interface, in workflow terms; each method's docstring is its contract.

Every implementation (the memory, file and PostgreSQL stores) passes the same contract
tests in `tests/store/`. Nothing outside a store implementation knows where or how runs are
kept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from enum import Enum
from typing import TYPE_CHECKING, Any

from wfrun.model import Run
from wfrun.store.queries import RunPage, RunSummary, has_suspension, newest_first, split_cursor

if TYPE_CHECKING:
    import threading


class Durability(Enum):
    """What a save must survive by the time it returns, said by what follows it; each store
    meets it its own way (a store with transactions commits every save alike)."""

    COMMIT = "commit"
    """A power cut: the state others act on (the default)."""

    STEP_START = "step_start"
    """The death of this process: the save marks a step about to execute under the saver's
    claim, and the step's outcome is saved next (superseding it). After a power cut the store
    may return the state before, and the step then executes again as if it never started."""

    BATCH = "batch"
    """The death of this process, and a power cut once the `Store.batch` open in this thread
    closes (outside a batch: COMMIT). For the last save of a run a batch advances: nothing of
    the run executes in this process until the batch closes."""


class Batch:
    """An open `Store.batch`: what its closing makes durable."""

    def adopt(self, run_ids: Iterable[str]) -> None:
        """Make the state and history of these runs durable with this batch too: runs that a
        process forked from this one (a tick worker) advanced in its copy of the batch and
        died before closing it. This default has nothing to do (every save is durable)."""


class ExecutionClaim(ABC):
    """Proof that this process is the one executing a run's steps right now: a lease.

    The claim must die with its holder: if the process is killed, another process can claim
    the run (at once where the store can tell, as the file store's flock and a PostgreSQL
    session can; at the latest when the lease runs out). A lease lasts the store's lease length
    and is renewed by the store while its holder lives (a background thread, every third of
    the length), so only a holder that is paused or cut off for longer than that loses it. A
    run claimed again gets a greater `token`; every save of the run by the old holder is then
    refused (`ClaimLost`, a ConflictError: it "lost its lease") and writes nothing.
    """

    @property
    @abstractmethod
    def run_id(self) -> str:
        """The run this claim is on."""

    @property
    @abstractmethod
    def token(self) -> int:
        """The fencing token: a positive integer greater than every token issued before for
        this run in this store."""

    @property
    def lost(self) -> bool:
        """True once the store knows the lease is gone (it ran out and the run may be, or was,
        claimed by another process). This default never loses one."""
        return False

    def renew(self) -> bool:
        """Extend the lease by the store's lease length from now (the store also does this by
        itself while the holder lives); False if it was lost. This default always holds."""
        return True

    @abstractmethod
    def release(self) -> None:
        """Give the claim up; idempotent."""

    def take_run(self) -> Run | None:
        """The run as the store read it while taking this claim, handed over once (None after
        that, and None if the store did not read it: then `Store.load` it). Read without the
        run's state lock, as any `load` outside it, so it may be stale by the time it is used
        (a resume or cancel changes a run under the lock, without its claim): a change starts
        from `Store.load` of it (with `known`) under the lock, and a save of a stale one is refused
        (ConflictError). This default reads nothing."""
        return None


def token_with_hash(records: Iterable[dict[str, Any]], token_hash: str) -> dict[str, Any] | None:
    """The start-token record whose `hash` is `token_hash`, or None: every hash compared in
    constant time, whether or not one matched (what `Store.find_token` promises)."""
    import hmac

    wanted = token_hash.encode("utf-8", "surrogatepass")
    found = None
    for record in records:
        stored = record["hash"] if isinstance(record["hash"], str) else ""  # (a damaged one)
        if hmac.compare_digest(stored.encode("utf-8", "surrogatepass"), wanted):
            found = record
    return found


class Store(ABC):
    """Where runs, their history, their due-time index and execution claims live."""

    multiprocess = True
    """True if several processes may work on this store at once (a tick forks workers only
    then). A process forked from one using the store holds none of its claims, locks or
    connections."""

    shared_acquire = False
    """True if processes calling `acquire_due` at once each get different runs without
    getting in each other's way (a database's `SKIP LOCKED`): forked tick workers then acquire
    batches each, as separate `tick` processes do, rather than share out the runs the parent
    found due and claim them one by one."""

    @abstractmethod
    def create(self, run: Run, events: Sequence[dict[str, Any]] = ()) -> None:
        """Durably store a new run, setting `run.revision` to 1, with `events`, the history
        events of its creation (see `save`).

        Raises ConflictError if a run with that id exists (nothing is written, events
        included), and LeftoverRecords (a ConflictError) if the history or logs of an earlier
        run of that id are kept while its state is gone (removed by hand): a new run never takes
        an earlier one's records as its own. The run is durable (and present in the due index
        if `run.next_due()` is set) when this returns.
        """

    @abstractmethod
    def load(self, run_id: str, known: Run | None = None) -> Run:
        """Return the run's current state.

        `known`: a state of this run the caller holds, unchanged since this store object
        loaded or saved it; it is returned itself if it is still the stored state (what this
        process already holds is not read again), else the run is loaded.

        Raises UsageError for an invalid run id (before touching storage), NotFoundError if
        there is no such run, StateError (naming the snapshot) if it cannot be read, parsed or
        verified; a corrupt snapshot is never modified.
        """

    @abstractmethod
    def save(self, run: Run, events: Sequence[dict[str, Any]] = (), *,
             durability: Durability = Durability.COMMIT,
             release: ExecutionClaim | None = None) -> None:
        """Replace the stored run with `run`, then increment `run.revision`; `events` are the
        history events of this state change, committed with it.

        `run.revision` must equal the stored revision (the one it was loaded at), otherwise
        ConflictError is raised and nothing is written (events included); a save of a run
        whose claim this process held and lost (another process took the run over) raises
        `ClaimLost` (a ConflictError) and writes nothing either. When
        it returns, the new state is in place atomically (a crash leaves the old or the new
        state, never a mix) and survives what `durability` says, the due index matches
        `run.next_due()`, and `events` follow the run's earlier ones in its history (as
        `append_history` appends them). A store with transactions commits state, due entry
        and events as one (a crash leaves all or none of them); the file store writes the
        state, then appends the events before returning (a crash in between leaves the new
        state without them). I/O failures raise StateError and leave the previous state
        intact.

        History events and log records reach stable storage with the save, except while the
        saving thread holds the run's execution claim or has a `batch` open: then at the
        latest when it releases the claim or closes the batch.

        `release`: this process's claim on the run, given up with this save (the run's last
        under that claim). Call it under the run's state lock: the claim is released before
        the lock is, so whoever changes the run after this save finds it unclaimed (and may
        claim it to execute what its change made ready), and whatever was changed before it
        was seen by this save's caller; the holder need not look at the run again. If the save
        raises, the claim is still held (the caller releases it); `claim.release()` after a
        save that went through does nothing more. A store with transactions ends the lease in
        the save's own transaction.
        """

    def batch(self) -> AbstractContextManager[Batch]:
        """A unit of work over many runs (a tick advancing every due run): saves made with
        `Durability.BATCH` by this thread while it is open, and the history of each run whose
        claim the thread released meanwhile, survive a power cut once it closes (the store may
        share one flush among them). Closing raises StateError on an I/O failure. Batches do
        not nest: one opened inside another joins it. This default has nothing to do."""
        return nullcontext(Batch())

    @abstractmethod
    def lock(self, run_id: str) -> AbstractContextManager[None]:
        """A context manager holding the run's state lock: every read-modify-write of a run
        happens inside it. Held only for the change, never while step code runs. Raises
        ConflictError if it cannot be had within a reasonable time."""

    @abstractmethod
    def claim(self, run_id: str) -> ExecutionClaim | None:
        """Try to become the run's executor without waiting; None if another live process
        holds the claim. The claim is released by `release()` or by the holder's death."""

    @abstractmethod
    def is_claimed(self, run_id: str) -> bool:
        """True if some live process holds the run's execution claim (a lease that has not run
        out, of a holder not known to be dead)."""

    def acquire_due(self, now: str, limit: int | None = None) -> list[ExecutionClaim]:
        """Claims of runs due at `now` (as `due` finds them, stale entries included), in due
        order, at most `limit` (all if None): every such run this process could claim, the
        ones another live holder has skipped. The caller advances each (and releases it); ask
        for a batch at a time, so that no lease is held while it waits its turn. This default
        is `due`, then `claim` each, reading further into the due index while runs are held
        by others."""
        claims: list[ExecutionClaim] = []
        tried: set[str] = set()
        window = None if limit is None else 2 * max(limit, 1)
        while limit is None or len(claims) < limit:
            found = self.due(now, window)
            for run_id in found:
                if run_id in tried:
                    continue
                tried.add(run_id)
                claim = self._claim_due(run_id)
                if claim is not None:
                    claims.append(claim)
                    if limit is not None and len(claims) >= limit:
                        break
            if window is None or len(found) < window:
                break
            window *= 4
        return claims

    def _claim_due(self, run_id: str) -> ExecutionClaim | None:
        """`claim` for the default `acquire_due`: a store whose claim of one run can fail
        while the others' succeed (a file it cannot open) reports it and returns None."""
        return self.claim(run_id)

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Block until something may have become due (a run created, resumed, cancelled, sent
        an event or given a new due time by any process), `stop` is set, or `timeout` seconds
        pass; `tick --watch` calls it between ticks. It may return early (the caller then
        looks for due runs and finds none). This default waits for `stop` or the timeout."""
        stop.wait(timeout)

    @abstractmethod
    def exists(self, run_id: str) -> bool:
        """True if a run with this id is stored (readable or not)."""

    @abstractmethod
    def delete(self, run_id: str) -> None:
        """Remove a finished run and all that is kept for it (its snapshot, history, logs,
        index entries and locks), durably. NotFoundError if there is no such run; ConflictError
        if it is not finished or a process holds its execution claim. Interrupted midway, the
        run is still there (its history or logs may be gone) and a second delete finishes."""

    @abstractmethod
    def run_ids(self, prefix: str = "") -> list[str]:
        """The ids of the stored runs that start with `prefix`, sorted (valid ids only); no
        snapshot is read (shell completion asks it at every keystroke)."""

    @abstractmethod
    def iter_runs(self) -> Iterator[Run | Exception]:
        """Every stored run, in no particular order; a run that cannot be read is yielded as
        the StateError describing it, so one bad snapshot never hides the others (likewise
        something stored where runs are that is no run's, such as a file named after no valid
        run id: the StateError names it)."""


    # -- queries across runs (`list`, `pending`, `prune`): pushed down to the store -----------

    def find_runs(self, statuses: Iterable[str] | None = None, workflow: str | None = None,
                  top_level: bool = True, limit: int | None = None,
                  before: str | None = None) -> RunPage:
        """The stored runs that match, newest first (`created_at`, then `run_id`, descending),
        as summaries; at most `limit` of them (all if None).

        `statuses`: only runs in one of these statuses (None: any; an unknown status matches
        nothing); `workflow`: only runs of that workflow; `top_level`: leave out child runs
        (those with a parent); `before`: only runs listed after the run whose `cursor` it is
        (the next page). `RunPage.more` is how many more runs match beyond `limit` (0 without
        a limit); a store that answers from an index may count it from the index alone (runs
        changed meanwhile counted as they were). `RunPage.problems` has a StateError for each
        stored run the query came across that cannot be read (as `iter_runs` yields them);
        it never stops the others. Cost grows with the runs returned, not with all runs, in a
        store with an index; this default reads every run."""
        wanted = None if statuses is None else set(statuses)
        after = split_cursor(before) if before is not None else None
        matching: list[RunSummary] = []
        problems: list[Exception] = []
        for item in self.iter_runs():
            if isinstance(item, Exception):
                problems.append(item)
            elif (wanted is None or item.status in wanted) \
                    and (workflow is None or item.workflow == workflow) \
                    and not (top_level and item.parent is not None) \
                    and (after is None or newest_first(item) < after):
                matching.append(RunSummary.of(item))
        matching.sort(key=newest_first, reverse=True)
        shown = matching if limit is None else matching[:max(limit, 0)]
        return RunPage(shown, len(matching) - len(shown), problems)

    def pending(self, workflow: str | None = None) -> tuple[list[Run], list[Exception]]:
        """Every stored run, top-level or child, that waits for data: not finished, with a step
        or foreach iteration `suspended` (see `has_suspension`); of `workflow` only if given.
        In no particular order; with a StateError for each run the query came across that
        cannot be read (as `iter_runs` yields them). Cost grows with the runs returned, not
        with all runs, in a store with an index; this default reads every run."""
        runs: list[Run] = []
        problems: list[Exception] = []
        for item in self.iter_runs():
            if isinstance(item, Exception):
                problems.append(item)
            elif has_suspension(item) and (workflow is None or item.workflow == workflow):
                runs.append(item)
        return runs, problems

    @abstractmethod
    def due(self, now: str, limit: int | None = None) -> list[str]:
        """Ids of runs whose next due time (see `Run.next_due`) is at or before `now`, in due
        order, at most `limit`. Answered from an index: the cost grows with the number of due
        runs, not with the number of stored runs, and no snapshot is read. May include stale
        entries (a run no longer due); callers check the loaded run."""

    def index_errors(self) -> list[dict[str, str]]:
        """What `due` found unusable in the index since the last call, each as tick reports an
        error (`{"run_id", "message"}`), then forgotten. `due` drops such an entry (one naming
        no valid run id) and goes on with the others: a bad entry never stops the index. The
        file store's `acquire_due` adds each due run whose claim file it could not open (and
        skips it until this is called). This default has none."""
        return []

    @abstractmethod
    def reindex(self, run_id: str) -> None:
        """Make the due index agree with the stored run: its entry as `Run.next_due` says,
        none if the run no longer exists (its snapshot deleted by hand), stale entries found
        by `due` dropped. Call it under the run's lock for a run `due` found that turned out
        not to be due."""

    @abstractmethod
    def append_history(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Append events to the run's history; the cost does not grow with its length. Only
        for events that belong to no state change (those are given to the save that commits
        the change: `create`, `save`).

        Appended events survive the death of this process at once, and reach stable storage
        as those of a `save` do."""

    @abstractmethod
    def read_history(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events, oldest first (a torn last line from a crash is ignored)."""

    @abstractmethod
    def append_log(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Append records of what a run's steps printed or logged (`wfrun logs`).

        Each record is a JSON object (`{"at", "step", "runs", "stream", "text", ...}`); the
        cost does not grow with the number of records already kept. Appended records survive
        the death of this process at once and reach stable storage as history events do
        (see `save`). They are not part of the run's state: losing the tail of the log in a
        power cut never affects the run."""

    @abstractmethod
    def read_logs(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The log records appended after `cursor` (0: from the first), oldest first, and the
        cursor to pass next time to get only newer ones. A run with no records gives
        `([], cursor)`; a torn last record (a crash mid-append) is not returned until it is
        complete, and a line that is not a JSON object is skipped."""

    @abstractmethod
    def secret_key(self) -> bytes:
        """A secret of at least 32 bytes, created on first use and kept private (0600, never in
        a snapshot), used to sign resume and cancel URLs."""

    # -- start tokens (`wfrun token`, `POST /workflows/W/runs`) ---------------------------------
    # A record is {"name", "workflow", "hash", "created_at", "revoked", "revoked_at"}: `hash` is
    # `sha256:` and the hex digest of the token (the token itself is never stored), `revoked`
    # a bool and `revoked_at` the time of the revocation or None.

    @abstractmethod
    def save_token(self, record: dict[str, Any]) -> None:
        """Durably store a new token record (kept private: 0600 files, or the like).

        Raises ConflictError, storing nothing, if a token with that name exists (revoked ones
        included: names are never reused)."""

    @abstractmethod
    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        """The record whose hash is `token_hash` (revoked or not), or None.

        Compares `token_hash` with every stored hash in constant time and reads the same
        whether or not one matches, so the time taken does not tell whether, or which, token
        exists. Sees every token saved or revoked before it was called, by any process."""

    @abstractmethod
    def tokens(self) -> list[dict[str, Any]]:
        """Every token record, oldest first."""

    @abstractmethod
    def revoke_token(self, name: str, at: str) -> dict[str, Any] | None:
        """Mark the token named `name` revoked at `at` (ISO time), durably, and return its record;
        None if there is no such token. Revoking a revoked token changes nothing (its
        `revoked_at` stays the first revocation's)."""

    def cached_manifest(self, digest: str) -> Any:
        """The parsed manifest document cached under `digest` (`sha256:` and the 64 hex digits
        of the manifest's bytes) by `cache_manifest`, or None.

        A cache, not state: None is always a correct answer (nothing cached, an entry lost or
        torn by a crash, or one that fails verification), and a document is returned only if
        it is equal to the one cached under that digest. Never raises for I/O or bad content;
        ValueError for a malformed digest. This default caches nothing."""
        return None

    def cache_manifest(self, digest: str, document: Any) -> None:
        """Remember `document` (a manifest as parsed from YAML) under `digest` for
        `cached_manifest`, if it comes back from JSON unchanged; otherwise do nothing.

        Best effort: an I/O failure is ignored, the write need not be durable (it must be
        atomic: a reader sees the whole entry or none), and storage that does not exist yet is
        not created just for this. ValueError for a malformed digest. This default does
        nothing."""
        return None

    # -- schedules (SPEC §11) -----------------------------------------------------------------

    @abstractmethod
    def schedule_state(self, workflow: str) -> tuple[dict[str, Any] | None, int]:
        """The state kept for the schedule of workflow `workflow` (the JSON object last given to
        `save_schedule_state`) and its revision; `(None, 0)` if none was saved.

        Sees every save made before it was called, by any process. Never creates storage.
        UsageError for a workflow name that is not `[a-z0-9][a-z0-9_-]*`; StateError (naming
        where it is kept) if what is stored cannot be read or verified."""

    @abstractmethod
    def save_schedule_state(self, workflow: str, state: dict[str, Any],
                            expected_revision: int) -> int:
        """Durably replace the state of `workflow`'s schedule with `state` (a JSON object) if
        its revision is still `expected_revision` (0: none saved yet), and return the new
        revision (`expected_revision + 1`).

        The check and the write are one atomic step across processes (optimistic
        concurrency): of two saves with the same expected revision one succeeds and the other
        raises ConflictError, writing nothing. Durable when it returns; a crash leaves the old
        or the new state, never a mix. StateError on an I/O failure (the old state intact)."""

    def check(self) -> tuple[int, list[dict[str, str]]]:
        """Examine everything stored and change nothing (for `wfrun doctor`).

        Returns how many runs were examined and one `{"path", "kind", "reason"}` per problem;
        `kind` is `snapshot` (cannot be read, parsed or verified), `history` (unreadable, or
        has lines that are not JSON), `temp` (a temporary file an interrupted write left; it is
        never read as state), `index` (a run that tick must visit is missing from the due
        index, or the index holds something tick cannot use), `key` (the URL signing key
        cannot be used), `mode` (others may read or write it), `schema` (a table, column,
        index or trigger of a database store is missing) or `orphan` (history or logs kept for
        a run id that has no run: its snapshot or row was moved or deleted by hand; found by
        comparing the run ids kept, never by reading histories). One with `"severity": "note"`
        is harmless (a temporary URL key a killed process left, an orphan): doctor says it and
        how to remove it, and does not count it as a problem. Reads every run, so its cost
        grows with all runs; takes no lock, so a run being changed meanwhile may be reported
        and should be checked again. This default knows only `iter_runs`; implementations
        report what else they can see.
        """
        runs, problems = 0, []
        for item in self.iter_runs():
            runs += 1
            if isinstance(item, Exception):
                problems.append({"path": "", "kind": "snapshot", "reason": str(item)})
        return runs, problems

    def label(self) -> str | None:
        """How messages name the whole store when it knows better than the URL or directory it
        was opened with (a database as `postgresql://HOST:PORT/DB (schema S)`, without the
        URL's user and parameters); None: by that URL or directory."""
        return None

    # -- moving state between stores (`wfrun state copy`, SPEC §10) ---------------------------

    @abstractmethod
    def has_state(self) -> bool:
        """True if this store was ever set up (a file store's directory exists, PostgreSQL's
        wfrun tables exist), found out without creating anything."""

    @abstractmethod
    def import_run(self, run: Run, history: list[dict[str, Any]],
                   logs: list[dict[str, Any]]) -> bool:
        """Store a run exactly as given (its revision, times, status and due entry) with its
        whole history and log records, durably, as another store kept it; True if stored.

        If a run with that id exists already, nothing is written: False if it is the same
        (state and revision, history and logs), else ConflictError naming the run. Nothing is
        half-stored: the run appears with its history and logs or not at all."""

    @abstractmethod
    def stored_secret_key(self) -> bytes | None:
        """The URL signing key if this store has one (None if none was made yet), without
        creating one; StateError if it cannot be read or is unusable."""

    @abstractmethod
    def adopt_secret_key(self, key: bytes) -> bool:
        """Make `key` (at least 32 bytes) this store's URL signing key if it has none, durably;
        True if adopted, False if it was this store's key already. ConflictError, changing
        nothing, if the store has another key: resume links signed by either would break."""

    @abstractmethod
    def schedule_workflows(self) -> list[str]:
        """The workflows whose schedule has a state saved (`save_schedule_state`), sorted;
        StateError naming what cannot be read."""
