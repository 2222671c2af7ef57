"""The file store's due index: `due/YYYYMMDDTHH/TIME~RUN`, one empty file per run tick must
visit, so that finding due runs lists a few directories and reads no snapshot."""

from __future__ import annotations

import os
from contextlib import suppress

from wfrun.model import Run
from wfrun.store import _fsops, _started


class DueIndex:
    """The due-index part of the file store (a mixin of FileStore)."""

    _index: dict[str, str | None]  # run -> its current index entry name
    _seen_entries: dict[str, list[str]]  # run -> entries found by due()

    def _path(self, *parts: str) -> str:
        raise NotImplementedError

    def _exists_dir(self) -> bool:
        raise NotImplementedError

    def _add_index(self, name: str) -> None:
        bucket = self._path("due", name[:11])
        if not os.path.isdir(bucket):
            os.makedirs(bucket, mode=0o700, exist_ok=True)
            _fsops.fsync_dir(self._path("due"))
        _fsops.create_empty(os.path.join(bucket, name))

    def _remove_index(self, name: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self._path("due", name[:11], name))

    def due(self, now: str, limit: int | None = None) -> list[str]:
        if not self._exists_dir():
            return []
        cutoff = _started.index_name(now, "")
        found: list[str] = []
        try:
            buckets = sorted(b for b in os.listdir(self._path("due")) if b <= cutoff[:11])
        except FileNotFoundError:
            return []
        for bucket in buckets:
            try:
                names = sorted(os.listdir(self._path("due", bucket)))
            except FileNotFoundError:
                continue
            if not names and bucket < cutoff[:11]:
                with suppress(OSError):
                    os.rmdir(self._path("due", bucket))
            for name in names:
                if name.partition("~")[0] > cutoff[:-1]:  # due exactly at `now` is due
                    break
                run_id = name.partition("~")[2]
                self._seen_entries.setdefault(run_id, []).append(name)
                if run_id not in found:
                    found.append(run_id)
                    if limit is not None and len(found) >= limit:
                        return found
        return found

    def reindex(self, run: Run) -> None:
        due = run.next_due()
        wanted = _started.index_name(due, run.run_id) if due else None
        if wanted and wanted != self._index.get(run.run_id):
            self._add_index(wanted)
        for stale in {self._index.get(run.run_id), *self._seen_entries.pop(run.run_id, [])}:
            if stale and stale != wanted:
                self._remove_index(stale)

    def drop_index(self, run_id: str) -> None:
        for stale in {self._index.pop(run_id, None), *self._seen_entries.pop(run_id, [])}:
            if stale:
                self._remove_index(stale)
