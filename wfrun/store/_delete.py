"""Deleting a finished run's files from the file store (`FileStore.delete`, for `wfrun prune`)."""

from __future__ import annotations

import contextlib
import os

import wfrun.store._fsops as _fsops
from wfrun.errors import ConflictError, StateError
from wfrun.store._filestore_parts import FileStoreParts


def delete(store: FileStoreParts, run_id: str) -> None:
    """`Store.delete` for the file store.

    Under the run's state lock and its execution claim: first what only describes the run
    (logs, history, the snapshot's spare names, index entries), then the snapshot, made durable
    by the directory's fsync, then the lock files (a process waiting on the state lock sees its
    file removed and finds no run)."""
    snapshot = store._snapshot_path(run_id)
    runs = os.path.dirname(snapshot)
    with store.lock(run_id):
        run = store.load(run_id)  # NotFoundError if it is gone
        if not run.finished:
            raise ConflictError(f"run {run_id} is {run.status}; only a finished run is deleted")
        claim = store.claim(run_id)
        if claim is None:
            raise ConflictError(f"run {run_id} is busy: another process holds it")
        try:
            doomed = [store._log_path(run_id), store._history_path(run_id),
                      *_fsops.spare_paths(snapshot)]
            try:
                for path in doomed:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                store._drop_index(run_id)
                os.unlink(snapshot)
                _fsops.fsync_dir(runs)
                store._unlist(run)  # its run-index entry, once the snapshot is gone
            except OSError as exc:
                raise StateError(f"cannot delete run {run_id} ({exc.filename}): "
                                 f"{exc.strerror}") from exc
            _forget(store, run_id)
            for lock in (f"{run_id}.exec", f"{run_id}.lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(store._path("locks", lock))
        finally:
            claim.release()


def _forget(store: FileStoreParts, run_id: str) -> None:
    """Drop what this process knew of the deleted run's files."""
    store._stat.pop(run_id, None)
    store._checked.discard(run_id)
    if store._mine is not None and store._mine[0] == run_id:
        store._mine = None
