"""The file store's due index: `due/YYYYMMDDTHH/TIME~RUN`, one empty file per run tick must
visit, so that finding due runs lists a few directories and reads no snapshot. An entry is a
hard link to its bucket's `.blank` file (`_dirs.link_blank`), not an inode of its own."""

from __future__ import annotations

import os
import re
import time
from contextlib import suppress
from typing import TYPE_CHECKING

import wfrun.store._appends as _appends
import wfrun.store._dirs as _dirs
import wfrun.store._fsops as _fsops
import wfrun.store._started as _started
from wfrun.errors import NotFoundError, StateError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.model import Run
from wfrun.store.abc import ExecutionClaim

_ATTEMPTS = 8  # creations of an index entry whose bucket a tick removes each time in between
BUCKET_GRACE_SECONDS = 60.0  # an empty bucket is kept this long after its last change
BUCKET_NAME = re.compile(r"[0-9]{8}T[0-9]{2}")  # an hour: YYYYMMDDTHH


class DueIndex:
    """The due-index part of the file store (a mixin of FileStore)."""

    _index: dict[str, str | None]  # run -> its current index entry name
    _seen_entries: dict[str, list[str]]  # run -> entries found by due()
    _index_errors: list[dict[str, str]]  # entries due() dropped, not yet taken (index_errors)
    _unclaimable: set[str]  # due runs whose claim file could not be opened (in index_errors)

    def _path(self, *parts: str) -> str:
        raise NotImplementedError

    if TYPE_CHECKING:  # (FileStore's)
        def load(self, run_id: str, known: Run | None = None) -> Run: ...

        def claim(self, run_id: str) -> ExecutionClaim | None: ...

    def _exists_dir(self) -> bool:
        raise NotImplementedError

    def _add_index(self, name: str) -> None:
        """Create an index entry, and its hour bucket if it has none, durably.

        `due` in another process removes a bucket it finds empty and older than its clock, at
        any moment, but only one unchanged for BUCKET_GRACE_SECONDS: an entry that finds the
        bucket it saw gone makes the bucket again and gets that long to come in (retried a
        few times, for a process stopped that long in between). Nothing is fsynced before the
        entry is in place, so no fsync is ever retried."""
        bucket = self._path("due", name[:11])
        entry = bucket + "/" + name
        made = False
        for attempt in range(_ATTEMPTS):
            if not os.path.isdir(bucket):
                _dirs.make_dir(bucket)  # (or another process made it meanwhile)
                made = True
            try:
                _dirs.link_blank(bucket, entry, counted=True)
                break
            except FileExistsError:
                break
            except FileNotFoundError:
                if attempt == _ATTEMPTS - 1:
                    raise
        if made:
            _fsops.fsync_dir(self._path("due"))  # the bucket's name
        _fsops.fsync_dir(bucket)  # the entry's name

    @staticmethod
    def _remove_bucket(bucket: str, blanks: list[str]) -> None:
        """Remove an empty bucket (`blanks`: its blank files) that no entry came into or left
        for a while: one made or emptied just now may be about to get an entry from another
        process (see _add_index)."""
        with suppress(OSError):
            if time.time() - os.stat(bucket).st_mtime >= BUCKET_GRACE_SECONDS:
                for name in blanks:  # (an entry linked to one meanwhile keeps its inode)
                    with suppress(FileNotFoundError):
                        os.unlink(f"{bucket}/{name}")
                os.rmdir(bucket)  # (fails if an entry came in since)

    def _remove_index(self, name: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self._path("due", name[:11], name))

    def due(self, now: str, limit: int | None = None) -> list[str]:
        if not self._exists_dir():
            return []
        cutoff = _started.index_name(now, "")
        found: list[str] = []
        try:
            buckets = sorted(b for b in os.listdir(self._path("due"))
                             if b <= cutoff[:11] and BUCKET_NAME.fullmatch(b))
        except FileNotFoundError:
            return []
        for bucket in buckets:
            try:
                names, blanks = entries_and_blanks(self._path("due", bucket))
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not names and bucket < cutoff[:11]:
                self._remove_bucket(self._path("due", bucket), blanks)
            while names and names[-1][:11] > bucket:  # sorts after every time of the hour
                stray = names.pop()  # (usually none: one comparison a bucket)
                run_id = stray.partition("~")[2]
                if not RUN_ID_PATTERN.fullmatch(run_id):
                    self._drop_entry(bucket, stray, run_id)  # else another hour's: doctor's
            for name in names:
                if name.partition("~")[0] > cutoff[:-1]:  # due exactly at `now` is due
                    break
                run_id = name.partition("~")[2]
                if not RUN_ID_PATTERN.fullmatch(run_id):
                    self._drop_entry(bucket, name, run_id)
                    continue
                self._seen_entries.setdefault(run_id, []).append(name)
                if run_id not in found:
                    found.append(run_id)
                    if limit is not None and len(found) >= limit:
                        return found
        return found

    def acquire_due(self, now: str, limit: int | None = None) -> list[ExecutionClaim]:
        """`Store.acquire_due` (its default), except that a batch holds claims on at most an
        eighth of this process's file descriptor limit (`ulimit -n`), and a due run whose
        claim file cannot be opened (`_claim_due`) stops no other run."""
        return super().acquire_due(now, _within_descriptors(limit))  # type: ignore[misc,no-any-return]

    def _claim_due(self, run_id: str) -> ExecutionClaim | None:
        """A due run's claim; one whose claim file cannot be opened (`locks/RUN.exec`: its
        mode or owner, a read-only file system) is reported once (`index_errors`, as tick
        reports an error) and skipped until then (the next tick tries it again)."""
        if run_id in self._unclaimable:
            return None
        try:
            return self.claim(run_id)
        except StateError as exc:
            self._unclaimable.add(run_id)
            self._index_errors.append({"run_id": run_id, "message": exc.message})
            return None

    def _drop_entry(self, bucket: str, name: str, run_id: str) -> None:
        """Remove an entry that names no valid run id (no run can be stored under it: made by
        hand or by another program) and remember it for `index_errors`."""
        path = self._path("due", bucket, name)
        try:
            os.unlink(path)
            done = "it was removed"
        except FileNotFoundError:
            return  # another tick removed (and reports) it
        except OSError as exc:
            done = f"it could not be removed ({exc.strerror}): remove it by hand"
        self._index_errors.append({"run_id": repr(run_id)[:80], "message": (
            f"due-index entry {path} does not name a valid run id (1 to 64 letters, digits, "
            f"'-' or '_'); {done}")})

    def index_errors(self) -> list[dict[str, str]]:
        errors, self._index_errors = self._index_errors, []
        self._unclaimable.clear()  # (a tick takes them once it is done: the next tries again)
        return errors

    def reindex(self, run_id: str) -> None:
        try:
            run = self.load(run_id)
        except NotFoundError:  # its snapshot was deleted by hand
            self._drop_index(run_id)
            return
        due = run.next_due()
        wanted = _started.index_name(due, run.run_id) if due else None
        if wanted and wanted != self._index.get(run.run_id):
            self._add_index(wanted)
        for stale in {self._index.get(run.run_id), *self._seen_entries.pop(run.run_id, [])}:
            if stale and stale != wanted:
                self._remove_index(stale)

    def _drop_index(self, run_id: str) -> None:
        """Remove the due-index entries of a run that no longer exists."""
        for stale in {self._index.pop(run_id, None), *self._seen_entries.pop(run_id, [])}:
            if stale:
                self._remove_index(stale)


def _within_descriptors(limit: int | None) -> int | None:
    """`limit`, or fewer claims if holding that many would leave too few file descriptors for
    advancing the runs (an eighth of the limit: 4 of `ulimit -n 32`, 128 of the usual 1024).
    Then the descriptors kept for later writes are closed too: a batch starts with none."""
    if limit is None:
        return None
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft // 8 >= limit:
        return limit
    _appends.close_kept()
    _fsops.close_kept_dirs()
    return max(1, soft // 8)


def entries_and_blanks(bucket: str) -> tuple[list[str], list[str]]:
    """A bucket's entries, sorted, and its blank files (`.blank`, and one a process making a
    fresh blank left behind)."""
    entries: list[str] = []
    blanks: list[str] = []
    for name in os.listdir(bucket):
        (blanks if name.startswith(_dirs.BLANK) else entries).append(name)
    entries.sort()
    return entries, blanks
