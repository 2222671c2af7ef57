"""Taking in runs kept by another store (`wfrun state copy`): the check every store's
`import_run` makes of a run it has already, and the file store's part (a mixin of FileStore):
runs imported with their histories and logs, the URL key adopted."""

from __future__ import annotations

import os
from typing import Any

import wfrun.store._fsops as _fsops
import wfrun.store._keyfile as _keyfile
from wfrun.errors import ConflictError, StateError, UsageError
from wfrun.model import Run
from wfrun.store._jsonenc import encoder
from wfrun.store.abc import Store

_dump = encoder(allow_nan=True, default=str)  # as the history and log files are appended


def check_stored(store: Store, run: Run, history: list[dict[str, Any]],
                 logs: list[dict[str, Any]], where: str) -> None:
    """Return if `store` holds `run` exactly (state, revision, history, logs); else raise
    ConflictError naming the run, what differs and `where` it is kept."""
    stored = store.load(run.run_id)
    if stored != run:
        differs = (f"revision {stored.revision} ({stored.status}) where the copy is at "
                   f"revision {run.revision} ({run.status})"
                   if stored.revision != run.revision or stored.status != run.status
                   else "a different state at the same revision")
    elif store.read_history(run.run_id) != history:
        differs = "a different history"
    elif store.read_logs(run.run_id)[0] != logs:
        differs = "different log records"
    else:
        return
    raise ConflictError(f"run {run.run_id} exists already in {where} with {differs}; it was "
                        "left as it is")


def staged(run: Run) -> Run:
    """A copy of a stored run to write as a new revision that ends up at `run.revision`
    (UsageError for a run that was never stored)."""
    if run.revision < 1:
        raise UsageError(f"run {run.run_id} has revision {run.revision}: only a run as a store "
                         "kept it can be imported")
    copy = Run.from_dict(run.to_dict())
    copy.revision = run.revision - 1
    return copy


class Transfer(Store):
    """The file store's part that takes in the runs and the URL key of another store."""

    _key: bytes | None
    _index: dict[str, str | None]
    _stat: dict[str, Any]
    root: str

    def _path(self, *parts: str) -> str:
        raise NotImplementedError

    def _ensure(self) -> None:
        raise NotImplementedError

    def _snapshot_path(self, run_id: str) -> str:
        raise NotImplementedError

    def _history_path(self, run_id: str) -> str:
        raise NotImplementedError

    def _log_path(self, run_id: str) -> str:
        raise NotImplementedError

    def _write(self, run: Run, path: str) -> None:
        raise NotImplementedError

    def import_run(self, run: Run, history: list[dict[str, Any]],
                   logs: list[dict[str, Any]]) -> bool:
        path = self._snapshot_path(run.run_id)
        new = staged(run)
        self._ensure()
        with self.lock(run.run_id):
            if os.path.exists(path):
                check_stored(self, run, history, logs, self.root)
                return False
            # history and logs first, whole (replacing what a run deleted by hand, or an
            # import interrupted before its snapshot, left): the snapshot makes the run exist
            for where, records in ((self._history_path(run.run_id), history),
                                   (self._log_path(run.run_id), logs)):
                self._replace_lines(where, records)
            self._index[run.run_id] = None
            self._stat.pop(run.run_id, None)
            self._write(new, path)
        return True

    def _replace_lines(self, path: str, records: list[dict[str, Any]]) -> None:
        """Make the JSON-lines file at `path` hold exactly `records`, durably (none: no file)."""
        try:
            if records:
                _fsops.durable_write(path, "".join(_dump(r) + "\n" for r in records).encode())
            elif os.path.exists(path):
                os.unlink(path)
                _fsops.fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def stored_secret_key(self) -> bytes | None:
        if not self.has_state():
            return None
        return _keyfile.existing(self._path("keys", "url.key"))

    def adopt_secret_key(self, key: bytes) -> bool:
        self._ensure()
        adopted = _keyfile.adopt(self._path("keys", "url.key"), key)
        self._key = key
        return adopted
