"""The PostgreSQL store's reads: the run a row holds (checked, named in messages), every run a
batch at a time, and the queries across runs (`list`'s pages, `pending`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from wfrun.errors import StateError
from wfrun.ids import check_run_id
from wfrun.model import SCHEMA_VERSION, Run
from wfrun.store._snapshot import run_from_json
from wfrun.store.postgres._records import RecordsPart
from wfrun.store.queries import RunPage, RunSummary, has_suspension, split_cursor

_BATCH = 500  # runs read per query by iter_runs and check
# what the holder of a damaged row does (docs/postgresql.md, "Looking at runs with SQL")
_WHAT_TO_DO = (": restore its row from a backup, or move the row out of wfrun_runs "
               "(docs/postgresql.md#looking-at-runs-with-sql)")


class ReadsPart(RecordsPart):
    """Reading runs from wfrun_runs: one row into a run, many rows, and the queries."""

    _address: str  # the database as a URL without credentials or parameters

    @property
    def _label(self) -> str:
        """The database as a URL without credentials, with the schema of wfrun's tables unless
        it is `public` (known once connected: each run's row was read on a connection), for
        messages: two projects sharing a database with a schema each are told apart."""
        schema = self._server().schema
        return f"{self._address} (schema {schema})" if schema not in ("", "public") \
            else self._address

    def _describe(self, run_id: str) -> str:
        return f"{self._label} run {check_run_id(run_id)}"

    def _parse(self, run_id: str, revision: int, run_schema: int, text: str) -> Run:
        """The run a row holds; StateError (naming it) if it is not a valid run."""
        what = self._describe(run_id)
        if run_schema != SCHEMA_VERSION:
            raise StateError(f"{what} has run schema {run_schema}, this wfrun reads "
                             f"{SCHEMA_VERSION}; upgrade wfrun")
        run = run_from_json(text, run_id, what, _WHAT_TO_DO)
        run.revision = revision
        return run

    def iter_runs(self) -> Iterator[Run | Exception]:
        for run_id, revision, run_schema, text in self._rows():
            try:
                yield self._parse(run_id, revision, run_schema, text)
            except StateError as exc:
                yield exc

    def _rows(self, columns: str = "revision, run_schema, snapshot::text"
              ) -> Iterator[tuple[Any, ...]]:
        """Every run's row, `_BATCH` at a time in run id order (no transaction held between)."""
        after = ""
        while True:
            rows = self._fetch(None, f"SELECT run_id, {columns} FROM wfrun_runs "
                                     "WHERE run_id > %s ORDER BY run_id LIMIT %s", [after, _BATCH])
            yield from rows
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    # -- queries across runs (list, pending, prune) -------------------------------------------

    def find_runs(self, statuses: Iterable[str] | None = None, workflow: str | None = None,
                  top_level: bool = True, limit: int | None = None,
                  before: str | None = None) -> RunPage:
        wanted = None if statuses is None else list(statuses)
        return self._again(None, lambda: self._find_runs(wanted, workflow, top_level, limit,
                                                         before))

    def _find_runs(self, statuses: list[str] | None, workflow: str | None, top_level: bool,
                   limit: int | None, before: str | None) -> RunPage:
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if statuses is not None:
            where.append("status = ANY(%s)")
            params.append(statuses)
        if workflow is not None:
            where.append("workflow = %s")
            params.append(workflow)
        if top_level:
            where.append("parent_run IS NULL")
        condition = " AND ".join(where)
        after = split_cursor(before) if before is not None else None
        wanted = None if limit is None else max(limit, 0)
        runs: list[RunSummary] = []
        problems: list[Exception] = []
        # The page's rows are read whole and verified, so that a run that cannot be read is
        # reported, not listed; if some could not be, the page is filled from the next rows.
        with self._conn() as conn:
            while wanted is None or len(runs) < wanted:
                page = [*where, "(created, run_id) < (%s, %s)"] if after else where
                need = None if wanted is None else wanted - len(runs)
                rows = conn.execute(
                    "SELECT run_id, revision, run_schema, snapshot::text, created FROM wfrun_runs "
                    f"WHERE {' AND '.join(page)} ORDER BY created DESC, run_id DESC LIMIT %s",
                    [*params, *(after or ()), need]).fetchall()
                for run_id, revision, run_schema, text, created in rows:
                    try:
                        runs.append(RunSummary.of(self._parse(run_id, revision, run_schema, text)))
                    except StateError as exc:
                        problems.append(exc)
                    after = (created, run_id)
                if need is None or len(rows) < need:
                    break
            more = 0
            if wanted is not None and len(runs) == wanted:
                condition += " AND (created, run_id) < (%s, %s)" if after else ""
                more = conn.execute(f"SELECT count(*) FROM wfrun_runs WHERE {condition}",
                                    [*params, *(after or ())]).fetchone()[0]
        return RunPage(runs, more, problems)

    def pending(self, workflow: str | None = None) -> tuple[list[Run], list[Exception]]:
        query = "SELECT run_id, revision, run_schema, snapshot::text FROM wfrun_runs WHERE suspended"
        rows = self._fetch(None, query + (" AND workflow = %s" if workflow is not None else ""),
                           [] if workflow is None else [workflow])
        runs: list[Run] = []
        problems: list[Exception] = []
        for row in rows:
            try:
                run = self._parse(*row)
            except StateError as exc:
                problems.append(exc)
                continue
            if has_suspension(run):  # (a row changed by hand since: what it holds decides)
                runs.append(run)
        return runs, problems
