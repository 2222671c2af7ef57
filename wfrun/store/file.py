"""The file store: one checksummed JSON snapshot per run under `.wfstate/`, and its indexes.

Layout (private to this module):

    .wfstate/                      0700
      runs/RUN.json                the snapshot: {"schema_version", "checksum", "due", "run"}
      runs/RUN.history.jsonl       the run's events, appended one line each
      runs/RUN.log.jsonl           what its steps printed or logged (`wfrun logs`), a line each
      due/YYYYMMDDTHH/TIME~RUN     the due index: one empty file per run that tick must visit
      status/STATUS/DAY/CREATED~RUN~WORKFLOW~KIND  the run index (list, pending, prune): one
                                   empty file per run, a hint checked against snapshots
                                   (_runindex)
      locks/RUN.lock, RUN.exec     the state lock (filelock's, see _statelock) and the
                                   execution claim (flock)
      keys/url.key                 the secret that signs resume and cancel URLs
      schedules/WORKFLOW.json      a schedule's state: last fire, last run, paused (_schedules)
      keys/tokens.json             start tokens' hashes (`wfrun token`; see _tokens)
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

import wfrun.store._dirs as _dirs
import wfrun.store._dueindex as _dueindex
import wfrun.store._filebatch as _filebatch
import wfrun.store._fsops as _fsops
import wfrun.store._histories as _histories
import wfrun.store._keyfile as _keyfile
import wfrun.store._rootdir as _rootdir
import wfrun.store._runqueries as _runqueries
import wfrun.store._started as _started
import wfrun.store._transfer as _transfer
from wfrun.errors import ConflictError, LeftoverRecords, NotFoundError, StateError, UsageError
from wfrun.ids import RUN_ID_PATTERN, check_run_id
from wfrun.model import RUNNING, SCHEMA_VERSION, Run
from wfrun.store._snapshot import head_revision, parse_snapshot, render_snapshot
from wfrun.store._statelock import LockTimeout, StateLock
from wfrun.store.abc import Durability, ExecutionClaim

_SUBDIRS = ("runs", "due", "locks", "keys")
LOCK_TIMEOUT_SECONDS = 30.0
KNOWN_RUNS_KEPT = 4096  # runs whose lock object and signatures one process keeps (see _locked)


class FileStore(_filebatch.BatchPart, _dueindex.DueIndex, _runqueries.RunQueries,
                _histories.Histories, _started.RecordingStore, _transfer.Transfer):
    """Runs as files in a local directory (not for NFS: flock and rename semantics differ)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._ready = False  # made (or checked) and tightened for writing: `_ensure`
        self._present = False  # found whole by a read: `_exists_dir`
        # run -> (ino, mtime, size, rev, signature of its started file or None)
        self._stat: dict[str, _started.Known] = {}
        self._index: dict[str, str | None] = {}  # run -> current index entry name
        self._listed: dict[str, str] = {}  # run -> its status in the run index
        self._seen_entries: dict[str, list[str]] = {}  # run -> entries found by due()
        self._index_errors: list[dict[str, str]] = []  # entries due() dropped (index_errors)
        self._unclaimable: set[str] = set()  # due runs whose claim failed (index_errors)
        self._key: bytes | None = None
        self._locks: dict[str, StateLock] = {}
        self._logged: set[str] = set()  # runs whose log this process appended to (to fsync)
        self._unsynced: set[str] = set()  # runs saved for a batch, their rename not yet fsynced
        self._held: dict[str, int] = {}  # run -> depth of this process's hold of its state lock
        self._checked: set[str] = set()  # runs read under their lock during the current hold
        self._claims: dict[str, int] = {}  # run -> descriptor of the claim this process holds
        # the last run state read or written here: run, snapshot and claim-file signatures, bytes
        self._mine: _started.Mine | None = None
        self._init_batches()

    # -- directory ---------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))  # POSIX only (flock); parts are checked names

    def _snapshot_path(self, run_id: str) -> str:
        return self._path("runs", check_run_id(run_id) + ".json")

    def _ensure(self) -> None:
        """Create the state directory (0700) on first write and refuse an unsafe one."""
        if self._ready:
            return
        try:
            # missing parents are made as `mkdir -p` would, but never writable by others
            made = _dirs.make_dir(self.root, 0o700, parents_mode=0o755)
            self._check_root()
            if not made:
                self._check_ours()
            for sub in _SUBDIRS:
                path = self._path(sub)
                try:
                    mode = os.stat(path).st_mode
                except FileNotFoundError:
                    _dirs.make_dir(path)
                    if sub == "runs":  # a new state directory: its run index is complete
                        self._mark_run_index_complete()
                    continue
                if mode & 0o077:  # restored from a backup, or changed by hand
                    os.chmod(path, 0o700)
            self._private_run_index()
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.root}: {exc.strerror}") from exc
        self._ready = True

    def _check_root(self) -> None:
        _rootdir.check_root(self.root, {*_SUBDIRS, "status"})

    def _check_ours(self) -> None:
        _rootdir.check_ours(self.root, {*_SUBDIRS, "status"})

    def _exists_dir(self) -> bool:
        if self._ready or self._present:
            return True
        if os.path.lexists(self.root):
            try:
                self._check_root()
                # (not `_ready`: the first write still tightens what a restore left open)
                self._present = all(os.path.isdir(self._path(s)) for s in _SUBDIRS)
                if not self._present:
                    self._check_ours()
            except OSError as exc:
                raise StateError(f"cannot read state directory {self.root}: {exc}") from exc
            return True
        return False

    def has_state(self) -> bool:
        return self._exists_dir()  # (a file in its place, or a foreign directory: StateError)

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot_path(self, run_id: str) -> str:
        """The file holding a run's snapshot (for file-store tests and tools)."""
        return self._snapshot_path(run_id)

    def exists(self, run_id: str) -> bool:
        return os.path.exists(self._snapshot_path(run_id))

    def create(self, run: Run, events: Sequence[dict[str, Any]] = ()) -> None:
        path = self._snapshot_path(run.run_id)
        self._ensure()
        with self.lock(run.run_id):
            if os.path.exists(path):
                raise ConflictError(f"run {run.run_id} already exists")
            left = [p for p in (self._history_path(run.run_id), self._log_path(run.run_id))
                    if os.path.exists(p)]
            if left:  # (`wfrun doctor` notes them): never a new run's history
                raise LeftoverRecords(
                    f"run {run.run_id} cannot be created: {' and '.join(left)} "
                    f"{'is' if len(left) == 1 else 'are'} left from an earlier run "
                    f"{run.run_id} whose snapshot is gone; move {'it' if len(left) == 1 else 'them'}"
                    f" away (or rm {' '.join(left)}), or choose another run id")
            self._index[run.run_id] = None
            self._stat.pop(run.run_id, None)
            run.revision = 0
            self._write(run, path)
            self.append_history(run.run_id, events)  # after the state (see Store.save)

    def load(self, run_id: str, known: Run | None = None) -> Run:
        if known is not None:
            held = self._stat.get(run_id)
            if held is not None and held[1] == known.revision \
                    and self._unchanged(run_id, self._snapshot_path(run_id)):
                if run_id in self._held:
                    self._checked.add(run_id)
                return known
        path = self._snapshot_path(run_id)
        self._exists_dir()  # never read from a state directory others can write to
        exec_path = self._path("locks", run_id + ".exec")
        mine = self._mine
        if mine is not None and mine[0] == run_id and self._same(run_id, path, mine[1], mine[2]):
            # what this process just read or wrote, still in place: parse it again (a fresh
            # Run each time, as callers change it), but skip reading and verifying the file
            if run_id in self._held:
                self._checked.add(run_id)
            return parse_snapshot(path, mine[3], verified=True)[0]
        st, raw = self._read_snapshot(run_id, path)
        try:
            run, index = parse_snapshot(path, raw, run_id=run_id)
        except StateError:
            # A writer may have recycled the inode this read started on (durable_replace):
            # what changed meanwhile is read again; what reads the same twice is damaged.
            st, again = self._read_snapshot(run_id, path)
            if again == raw:
                raise
            run, index = parse_snapshot(path, again, run_id=run_id)
            raw = again
        started, sig, record = _started.read(exec_path, run.revision, self._claims.get(run_id),
                                             run_id)
        snapshot_sig = (st.st_ino, st.st_mtime_ns, st.st_size, head_revision(raw))
        run = started or run
        self._note_listed(run_id, run.status)  # the status the run index files it under
        self._stat[run_id] = (snapshot_sig, run.revision, sig)
        self._index[run_id] = index
        self._mine = (run_id, snapshot_sig, sig, record if started else raw)
        if run_id in self._held:
            self._checked.add(run_id)
        return run

    def _read_snapshot(self, run_id: str, path: str) -> tuple[os.stat_result, bytes]:
        try:
            return _fsops.read_whole(path)
        except FileNotFoundError:
            if not os.path.lexists(self.root):  # the wrong directory, more likely than no run
                raise NotFoundError(f"no run {run_id}: the state directory {self.root} does not "
                                    "exist (--state-dir, --store or WFRUN_STATE_DIR names "
                                    "another one?)") from None
            raise NotFoundError(f"no run {run_id} (looked for {path})") from None
        except OSError as exc:
            raise StateError(f"cannot read snapshot {path}: {exc.strerror}") from exc

    def save(self, run: Run, events: Sequence[dict[str, Any]] = (), *,
             durability: Durability = Durability.COMMIT,
             release: ExecutionClaim | None = None) -> None:
        if durability is Durability.STEP_START:
            self._save_started(run, events)  # into the claim file (see _started)
        else:
            path = self._snapshot_path(run.run_id)
            self._check_revision(run, path)
            deferred = durability is Durability.BATCH and self._in_batch()
            self._write(run, path, deferred=deferred)
            self.append_history(run.run_id, events)  # after the state: see Store.save
        if release is not None:
            release.release()  # before the caller lets the state lock go

    def _flush(self) -> None:
        super()._flush()
        if len(self._locks) > KNOWN_RUNS_KEPT or len(self._stat) > KNOWN_RUNS_KEPT:
            self._forget_oldest()  # a tick's runs were kept until now

    def _check_revision(self, run: Run, path: str) -> None:
        known = self._stat.get(run.run_id)
        if run.run_id in self._checked and known is not None and known[1] == run.revision:
            return  # read under the lock this process still holds: no one else can have written
        fresh = known is not None and self._unchanged(run.run_id, path)
        stored = known[1] if known and fresh else self.load(run.run_id).revision  # or NotFound
        if stored != run.revision:
            raise ConflictError(
                f"run {run.run_id} changed while this command worked on it "
                f"(revision {stored}, expected {run.revision}); try again"
            )

    def _write(self, run: Run, path: str, deferred: bool = False) -> None:
        if run.run_id in self._unsynced:
            self._flush()  # its spare is the inode that version is in: make the swap durable
        run_data = run.to_dict()
        run_data["revision"] = run.revision + 1
        due = run.next_due()
        new_index = _started.index_name(due, run.run_id) if due else None
        old_index = self._index.get(run.run_id)
        if run.status == RUNNING and old_index and new_index and old_index <= new_index:
            new_index = old_index  # already due: it will be found if this process dies
        data = render_snapshot(SCHEMA_VERSION, new_index, run_data)
        try:
            if new_index and new_index != old_index:
                self._add_index(new_index)
            listed = self._list_before_write(run)  # an entry under a new status: see _runindex
            _fsops.durable_replace(path, data, sync_dir=not deferred)
        except OSError as exc:
            kept = "the previous state is intact"
            with suppress(OSError), open(path, "rb") as fh:
                if fh.read() == data:  # renamed into place; only the directory fsync failed
                    kept = "the new state is in place but may not survive a power cut"
            raise StateError(
                f"cannot write snapshot {path}: {exc.strerror or exc}; {kept}"
                + ("; free some disk space" if exc.errno == errno.ENOSPC else "")
            ) from exc
        run.revision += 1
        self._list_after_write(run, listed)
        if deferred:
            self._unsynced.add(run.run_id)
        known, fd = self._stat.get(run.run_id), self._claims.get(run.run_id)
        record = known[2] if known else None
        if record is not None and fd is not None:
            _started.clear(fd)  # superseded by this durable write
            record = None
        st = os.stat(path)
        snapshot_sig = (st.st_ino, st.st_mtime_ns, st.st_size, run.revision)
        self._stat[run.run_id] = (snapshot_sig, run.revision, record)
        self._mine = (run.run_id, snapshot_sig, record, data)
        self._index[run.run_id] = new_index
        for stale in {old_index, *self._seen_entries.pop(run.run_id, [])}:
            if stale and stale != new_index:
                self._remove_index(stale)

    # -- listing -----------------------------------------------------------------------------

    def delete(self, run_id: str) -> None:
        import wfrun.store._delete as _delete  # only `wfrun prune` deletes

        _delete.delete(self, run_id)

    def _snapshot_stems(self, prefix: str = "") -> list[str]:
        """The names before `.json` of the files in runs/ that look like snapshots, sorted
        (a stray file's name included: see `stray_snapshot`)."""
        if not self._exists_dir():
            return []
        # (none if runs/ is missing: a state directory made empty by hand, systemd, a volume)
        names = _dirs.names_in(self._path("runs"))
        return sorted(name[: -len(".json")] for name in names
                      if name.endswith(".json") and name.startswith(prefix)
                      and not name.startswith("."))

    def stray_snapshot(self, stem: str) -> str:
        """Why `runs/STEM.json` (STEM not a valid run id) is no run's snapshot, for messages."""
        path = self._path("runs", stem + ".json")
        return (f"{path} is not a run's snapshot ({stem[:80]!r} is not a valid run id) and "
                f"is skipped; move it out of {self._path('runs')}")

    def run_ids(self, prefix: str = "") -> list[str]:
        return [stem for stem in self._snapshot_stems(prefix) if RUN_ID_PATTERN.fullmatch(stem)]

    def iter_runs(self) -> Iterator[Run | Exception]:
        for run_id in self._snapshot_stems():
            if not RUN_ID_PATTERN.fullmatch(run_id):
                yield StateError(self.stray_snapshot(run_id))  # one stray file costs itself
                continue
            try:
                yield self.load(run_id)
            except (StateError, UsageError) as exc:
                yield exc
            except NotFoundError:
                continue

    def check(self) -> tuple[int, list[dict[str, str]]]:
        import wfrun.store._check as _check  # only `wfrun doctor` examines every file

        return _check.check(self) if self._exists_dir() else (0, [])

    # -- locks and claims ----------------------------------------------------------------------

    def _after_fork(self) -> None:
        super()._after_fork()
        self._locks, self._claims = {}, {}  # a parent's holds are not the child's

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        check_run_id(run_id)
        return self._locked(run_id)

    @contextmanager
    def _locked(self, run_id: str) -> Iterator[None]:
        self._ensure()
        lock = self._locks.get(run_id)
        if lock is None:  # one object per run (reentrant per thread)
            lock = self._locks[run_id] = StateLock(self._path("locks", run_id + ".lock"),
                                                   f"the state lock of run {run_id}")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
        except LockTimeout:
            raise ConflictError(
                f"run {run_id} is busy: its state lock was held for over "
                f"{LOCK_TIMEOUT_SECONDS:.0f}s; try again"
            ) from None
        self._held[run_id] = self._held.get(run_id, 0) + 1
        try:
            yield
        finally:
            depth = self._held.pop(run_id) - 1
            if depth:
                self._held[run_id] = depth
            else:
                self._checked.discard(run_id)
            lock.release()
            if len(self._locks) > KNOWN_RUNS_KEPT or len(self._stat) > KNOWN_RUNS_KEPT:
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Forget what this process knows of its oldest half of runs (lock objects, signatures,
        index entries), so that a `tick --watch` that meets new runs for months stays flat; a
        run locked or claimed here is kept, and a forgotten run is simply read again."""
        busy = self._held.keys() | self._claims.keys() | self._unsynced
        for known in (self._locks, self._stat):
            oldest = list(itertools.islice(known, max(len(known) - KNOWN_RUNS_KEPT // 2, 0)))
            for run_id in oldest:
                if run_id not in busy:  # a run's signatures and index entry go together
                    self._locks.pop(run_id, None)
                    self._stat.pop(run_id, None)
                    self._index.pop(run_id, None)
        for run_id in [r for r in self._index if r not in self._stat and r not in busy]:
            del self._index[run_id]
        if self._mine is not None and self._mine[0] not in self._stat:
            self._mine = None  # its fast path would skip the read that sets the index again

    # -- secrets -------------------------------------------------------------------------------

    def secret_key(self) -> bytes:
        if self._key is None:
            self._ensure()
            self._key = _keyfile.load_or_create(self._path("keys", "url.key"))
        return self._key

    # -- start tokens (wfrun token; POST /workflows/W/runs) -----------------------------------

    def save_token(self, record: dict[str, Any]) -> None:
        import wfrun.store._tokens as _tokens  # only token commands and HTTP starts use tokens

        _tokens.save(self, record)

    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        import wfrun.store._tokens as _tokens

        return _tokens.find(self, token_hash)

    def tokens(self) -> list[dict[str, Any]]:
        import wfrun.store._tokens as _tokens

        return _tokens.every(self)

    def revoke_token(self, name: str, at: str) -> dict[str, Any] | None:
        import wfrun.store._tokens as _tokens

        return _tokens.revoke(self, name, at)

    # -- parsed manifests (a cache, not state) ------------------------------------------------

    def cached_manifest(self, digest: str) -> Any:
        import wfrun.store._manifest_cache as _manifest_cache  # loaded only by commands that read a workflow

        return _manifest_cache.read(self.root, digest)

    def cache_manifest(self, digest: str, document: Any) -> None:
        import wfrun.store._manifest_cache as _manifest_cache

        _manifest_cache.write(self.root, digest, document)

    # -- schedules (SPEC §11): one state per scheduled workflow, see _schedules ----------------

    def schedule_state(self, workflow: str) -> tuple[dict[str, Any] | None, int]:
        import wfrun.store._schedules as _schedules  # only tick and `wfrun schedules` read them

        return _schedules.read(self, workflow)

    def save_schedule_state(self, workflow: str, state: dict[str, Any],
                            expected_revision: int) -> int:
        import wfrun.store._schedules as _schedules

        return _schedules.save(self, workflow, state, expected_revision)

    def schedule_workflows(self) -> list[str]:
        import wfrun.store._schedules as _schedules

        return _schedules.workflows(self)
