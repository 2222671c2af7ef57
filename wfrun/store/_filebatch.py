"""When the file store's writes reach stable storage: a save's history at once, or at the
release of the saver's claim, or when its batch closes; a batch's last states with one
directory fsync; and what a forked process must not inherit."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

import wfrun.store._fsops as _fsops
from wfrun.errors import StateError
from wfrun.store.abc import Batch

SYNC_THREADS = 8  # histories fsynced at once when a batch closes (the journal commits them together)


class FileBatch(Batch):
    """An open batch of the file store: the runs whose history it owes an fsync."""

    def __init__(self, unsynced: set[str], flush: Callable[[], None],
                 sync: Callable[[str], str | None]) -> None:
        self.histories: set[str] = set()
        self._unsynced, self._flush, self._sync = unsynced, flush, sync

    def adopt(self, run_ids: Iterable[str]) -> None:
        self.histories.update(run_ids)
        self._unsynced.update(run_ids)  # their last states too: one directory fsync

    def close(self) -> None:
        """Make what the batch owes durable: the directory entries of its deferred states,
        then its histories, several fsyncs at a time."""
        self._flush()
        run_ids = sorted(self.histories)
        self.histories.clear()
        if len(run_ids) > 1:
            # imported here, not at the top: every command imports this module, few close a
            # batch of several runs, and concurrent.futures costs a cold start ~2 ms
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(SYNC_THREADS, len(run_ids))) as pool:
                failed = [f for f in pool.map(self._sync, run_ids) if f]
        else:
            failed = [f for f in map(self._sync, run_ids) if f]
        if failed:
            raise StateError("; ".join(failed[:3]) + (
                f" (and {len(failed) - 3} more)" if len(failed) > 3 else "")
                + ": that history may not survive a power cut")


class BatchPart:
    """The file store's part that decides when histories and deferred states are fsynced (a
    mixin of FileStore)."""

    _unsynced: set[str]  # runs whose last state was saved without its directory fsync

    if TYPE_CHECKING:  # (FileStore's and _histories.Histories')
        def _path(self, *parts: str) -> str: ...

        def _sync_history(self, run_id: str) -> None: ...

    def _init_batches(self) -> None:
        self._local = threading.local()  # .batch: the FileBatch open in this thread, if any
        self._claimers: dict[str, int] = {}  # run -> thread holding its claim here
        _AFTER_FORK.append(weakref.WeakMethod(self._after_fork))

    def _open_batch(self) -> FileBatch | None:
        batch: FileBatch | None = getattr(self._local, "batch", None)
        return batch

    def batch(self) -> AbstractContextManager[Batch]:
        """`Store.batch`: closing it makes its deferred states and owed histories durable."""
        return self._batched()

    @contextmanager
    def _batched(self) -> Iterator[Batch]:
        outer = self._open_batch()
        if outer is not None:  # batches do not nest: this one joins the open one
            yield outer
            return
        batch = self._local.batch = FileBatch(self._unsynced, self._flush,
                                              self._try_sync_history)
        try:
            yield batch
        finally:
            self._local.batch = None
            batch.close()

    def _in_batch(self) -> bool:
        return self._open_batch() is not None

    def _appended(self, run_id: str) -> None:
        """History (or log) of `run_id` was appended: fsync it now, or owe it to the claim
        this thread holds on the run, or to this thread's batch."""
        batch = self._open_batch()
        if batch is not None:
            batch.histories.add(run_id)
        elif self._claimers.get(run_id) != threading.get_ident():
            self._sync_history(run_id)

    def _claim_taken(self, run_id: str) -> None:
        self._claimers[run_id] = threading.get_ident()

    def _claim_given_up(self, run_id: str) -> None:
        """The claim on `run_id` is released: what its holder appended is owed now."""
        if self._claimers.pop(run_id, None) is None:
            return
        batch = self._open_batch()
        if batch is not None:
            batch.histories.add(run_id)
        else:
            self._sync_history(run_id)

    def _try_sync_history(self, run_id: str) -> str | None:
        try:
            self._sync_history(run_id)
        except StateError as exc:
            return exc.message
        return None

    def _flush(self) -> None:
        """Make the states saved without their directory fsync durable (one fsync of runs/)."""
        if not self._unsynced:
            return
        runs = self._path("runs")
        try:
            _fsops.fsync_dir(runs)
        except OSError as exc:
            raise StateError(
                f"cannot sync directory {runs}: {exc.strerror or exc}; the last state of "
                f"{len(self._unsynced)} run(s) may not survive a power cut") from exc
        finally:
            self._unsynced.clear()

    def _after_fork(self) -> None:
        """In a forked child: no batch is open, and no claim or lock of the parent is held."""
        self._local = threading.local()
        self._claimers = {}


# what each file store of this process does in a forked child (dead stores drop out)
_AFTER_FORK: list[weakref.WeakMethod[Callable[[], None]]] = []


def _forked() -> None:
    _AFTER_FORK[:] = [ref for ref in _AFTER_FORK if ref() is not None]
    for ref in _AFTER_FORK:
        forget = ref()
        if forget is not None:
            forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
