"""The file store's append-only files: each run's history (`RUN.history.jsonl`) and what its
steps printed and logged (`RUN.log.jsonl`), both JSON lines, appended and never rewritten."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import wfrun.store._appends as _appends
import wfrun.store._jsonlines as _jsonlines
from wfrun.errors import StateError
from wfrun.ids import check_run_id


class Histories:
    """The history and step-output part of the file store (a mixin of FileStore)."""

    _logged: set[str]  # runs whose log this process appended to (fsynced with the history)

    def _path(self, *parts: str) -> str:
        raise NotImplementedError

    def _ensure(self) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # (_filebatch.BatchPart's)
        def _appended(self, run_id: str) -> None: ...

    def _history_path(self, run_id: str) -> str:
        return self._path("runs", check_run_id(run_id) + ".history.jsonl")

    def append_history(self, run_id: str, events: Sequence[dict[str, Any]]) -> None:
        if events:
            self._ensure()
            _jsonlines.append(self._history_path(run_id), list(events), "history")
            self._appended(run_id)

    def _sync_history(self, run_id: str) -> None:
        """Make the run's appended history and log lines durable."""
        try:
            with suppress(FileNotFoundError):  # a run's log may be written before its history
                _appends.fsync_file(self._history_path(run_id))
            if run_id in self._logged:
                self._logged.discard(run_id)
                _appends.fsync_file(self._log_path(run_id))
        except OSError as exc:
            raise StateError(
                f"cannot sync history {self._history_path(run_id)}: {exc.strerror}"
            ) from exc

    def read_history(self, run_id: str) -> list[dict[str, Any]]:
        return _jsonlines.read(self._history_path(run_id), 0, "history")[0]

    def _log_path(self, run_id: str) -> str:
        return self._path("runs", check_run_id(run_id) + ".log.jsonl")

    def append_log(self, run_id: str, records: list[dict[str, Any]]) -> None:
        if records:
            self._ensure()
            _jsonlines.append(self._log_path(run_id), records)
            self._logged.add(run_id)
            self._appended(run_id)

    def read_logs(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        return _jsonlines.read(self._log_path(run_id), max(0, cursor))
