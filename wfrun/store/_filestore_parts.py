"""What the file store's helper modules (`_check`, `_delete`, `_schedules`, `_tokens`) use of
the FileStore they are given, as a Protocol: they need not import wfrun.store.file, which
imports them, so the store package has no import cycle (as the engine's `_runner_api`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from wfrun.model import Run
from wfrun.store._started import Known, Mine
from wfrun.store.abc import ExecutionClaim


class FileStoreParts(Protocol):
    """The state directory's layout and the caches a helper must keep in step with it."""

    _index: dict[str, str | None]  # run -> its current due-index entry name
    _stat: dict[str, Known]  # run -> signatures of what this process last read
    _checked: set[str]  # runs read under their lock during the current hold
    _mine: Mine | None  # the last run state this process read or wrote

    def load(self, run_id: str, known: Run | None = None) -> Run:
        """`Store.load`."""
        ...

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        """`Store.lock`."""
        ...

    def claim(self, run_id: str) -> ExecutionClaim | None:
        """`Store.claim`."""
        ...

    def _drop_index(self, run_id: str) -> None:
        """Remove the due-index entries of a run that no longer exists."""
        ...

    def stray_snapshot(self, stem: str) -> str:
        """Why `runs/STEM.json` (STEM not a valid run id) is no run's snapshot, for messages."""
        ...

    def _path(self, *parts: str) -> str:
        """A path inside the state directory."""
        ...

    def _snapshot_path(self, run_id: str) -> str:
        """The run's snapshot file."""
        ...

    def _history_path(self, run_id: str) -> str:
        """The run's history file."""
        ...

    def _log_path(self, run_id: str) -> str:
        """The run's log file."""
        ...

    def _ensure(self) -> None:
        """Create the state directory and its subdirectories if they do not exist."""
        ...

    def _exists_dir(self) -> bool:
        """True if the state directory exists."""
        ...

    def _unlist(self, run: Run) -> None:
        """Remove a deleted run from the run index."""
        ...

    def _check_run_index(self) -> list[dict[str, str]]:
        """`doctor`'s problems with the run index."""
        ...

