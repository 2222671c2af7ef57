"""The PostgreSQL store's connections and its state lock: one operation's connection (the
thread's transaction under a run's lock, else a pooled autocommit one), a read or write tried
again where a lost connection cannot apply it twice, and `lock(run)` as a transaction holding
`pg_advisory_xact_lock` (a part of PostgresStore)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

import wfrun.store.postgres._connect as _connect
import wfrun.store.postgres._failures as _failures
from wfrun.errors import ConflictError, StateError
from wfrun.ids import check_run_id
from wfrun.store.abc import Store
from wfrun.store.postgres._connect import Hold
from wfrun.store.postgres._failures import errors

T = TypeVar("T")


class TransactionPart(Store):
    """Connections, transactions and the state lock of the PostgreSQL store."""

    url: str  # the store's URL: its server's key
    where: str  # the database, for messages
    _schema_seen = ""  # current_schema() as `has_state` found it, on a connection of its own

    def _server(self) -> _connect.Server:
        return _connect.server(self.url)

    @property
    def _place(self) -> str:
        """`where`, with the schema of wfrun's tables, for messages naming a run or a table."""
        return self._with_schema(self.where)

    def _table(self, table: str) -> str:
        """`where`, with the schema and `table`, for messages naming a row of that table."""
        return self._with_schema(self.where, table)

    def _with_schema(self, database: str, table: str = "") -> str:
        """`database` (as messages name it) followed by `(schema S)`, the schema of wfrun's
        tables, unless it is `public` or not known yet (it is once connected), and the table
        (`(schema S, table T)`): two projects sharing a database with a schema each are told
        apart."""
        schema = self._server().schema or self._schema_seen
        said = [f"schema {schema}"] if schema not in ("", "public") else []
        said += [f"table {table}"] if table else []
        return f"{database} ({', '.join(said)})" if said else database

    def close(self) -> None:
        """Close this process's connections to the database (every store object of this URL
        shares them; they reopen on the next use)."""
        _connect.close(self.url)

    @contextmanager
    def _conn(self, run_id: str | None = None) -> Iterator[Any]:
        """A connection for one operation: inside this thread's hold of `run_id`'s lock, the
        hold's transaction (begun again if a save ended it), else a pooled autocommit one."""
        server = self._server()
        hold = server.holds().get(run_id) if run_id is not None else None
        with errors(self.where, server.names):
            if hold is None:
                with server.connection() as conn:
                    yield conn
                return
            if not hold.open:
                self._begin(hold, run_id or "")
            try:
                yield hold.conn
            except psycopg.Error:
                hold.abort()
                raise

    def _again(self, run_id: str | None, work: Callable[[], T], write: bool = False) -> T:
        """Do `work` (one operation); if its connection was lost, once more on another, where
        that cannot apply anything twice: not under this thread's lock of the run (its
        transaction is gone), and for a write only if the server said it was not carried out."""
        try:
            return work()
        except _failures.ConnectionLost as exc:
            if (run_id is not None and run_id in self._server().holds()) or (write and exc.applied):
                raise
            return work()

    def _fetch(self, run_id: str | None, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of one read (done again once if its connection was lost)."""
        def read() -> list[tuple[Any, ...]]:
            with self._conn(run_id) as conn:
                rows: list[tuple[Any, ...]] = conn.execute(query, params).fetchall()
                return rows

        return self._again(run_id, read)

    def _begin(self, hold: Hold, run_id: str) -> None:
        """Open the hold's transaction and take the run's lock in it, reading the run's revision
        once the lock is granted, all in one round trip (a pipeline): what `reload` asks under
        the lock is known without another."""
        key = self._server().key("lock", run_id)
        hold.open, hold.revision = True, None
        try:
            with hold.conn.pipeline():
                hold.conn.execute("BEGIN")
                hold.conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
                read = hold.conn.execute("SELECT revision FROM wfrun_runs WHERE run_id = %s",
                                         [run_id])
            row = read.fetchone()
            hold.revision = row[0] if row else None
        except pgerrors.LockNotAvailable:
            hold.abort()
            raise ConflictError(f"run {run_id} is busy: its state lock was held for over "
                                f"{_connect.LOCK_TIMEOUT}; try again") from None
        except pgerrors.DeadlockDetected:  # two processes each held a lock the other wanted
            hold.abort()
            raise ConflictError(f"run {run_id} is busy: another process held its state lock "
                                "while waiting for one this process held; try again") from None

    def _commit(self, hold: Hold | None) -> None:
        """Commit the hold's transaction (ending its lock until the next operation)."""
        if hold is None or not hold.open:
            return
        hold.open = False
        try:
            hold.conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise StateError(f"committing to PostgreSQL {self.where} failed: "
                             f"{_failures.reason_of(exc)}; the change may not be saved, check "
                             "the run before trying again") from None

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        check_run_id(run_id)
        return self._locked(run_id)

    @contextmanager
    def _locked(self, run_id: str) -> Iterator[None]:
        server = self._server()
        holds = server.holds()
        hold = holds.get(run_id)
        if hold is not None:  # reentrant in this thread, as the file store's
            hold.depth += 1
            try:
                yield
            finally:
                hold.depth -= 1
            return
        for attempt in (1, 2):
            try:
                with errors(self.where, server.names), server.connection() as conn:
                    hold = holds[run_id] = Hold(conn)
                    try:
                        try:
                            self._begin(hold, run_id)
                        except psycopg.OperationalError as exc:
                            if attempt == 1 and _failures.lost(exc) and (conn.broken or conn.closed):
                                raise _LostAtBegin from None  # nothing done yet: another one
                            raise
                        yield
                        if hold.open:
                            hold.conn.execute("COMMIT")  # nothing was saved: only the lock ends
                            hold.open = False
                    except BaseException:
                        hold.abort()
                        raise
                    finally:
                        del holds[run_id]
                return
            except _LostAtBegin:
                server.distrust()  # (the other pooled connections are checked before use)


class _LostAtBegin(Exception):
    """The connection a state lock was to be taken on was found lost: take it on another."""
