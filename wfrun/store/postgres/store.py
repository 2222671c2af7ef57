"""The PostgreSQL store: runs as rows, with the same contract as the file store.

Tables (see `_schema`): `wfrun_runs` (one row per run: the run as JSON, its revision, and
the columns queries and the due index need; `json`, not `jsonb`, which would reorder a run's
steps and refuse the NUL character a step's output may hold), `wfrun_history` and `wfrun_logs` (append-only,
ordered), `wfrun_keys` (the URL signing key), `wfrun_claims` (who executes a run, with a
fencing token) and `wfrun_manifests` (a cache of parsed manifests).

- A state change (create or save) is one statement in one transaction: the run's row, its due
  entry and its history events together (`_CHANGE`), the revision check (and fencing) in its
  WHERE: a stale revision changes nothing, events included, and raises ConflictError.
- `lock(run)` is a transaction on a pooled connection holding `pg_advisory_xact_lock` on the
  run: what is loaded and saved under it happens in that transaction, and the save commits it
  (the lock is taken again if more follows under the same `with`).
- `claim(run)` is a lease (see `_leases`): a row of `wfrun_claims` with a new fencing token
  and an expiry, renewed while this process lives, with a session advisory lock on its main
  connection telling others at once that the holder died. While this process holds a claim,
  its saves of that run commit only if the token is still the run's latest (`_FENCE`), so a
  process whose lease ran out (paused, cut off) and was taken over cannot overwrite. The last
  save under a claim ends it in the same statement (`save` with `release`).
- `acquire_due` claims due runs a batch per transaction (`FOR UPDATE SKIP LOCKED`), each claim
  carrying its run as that statement read it (`take_run`: the tick loads none again), and
  `wait_for_work` listens for runs becoming due (see `_listen`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import psycopg

import wfrun.store.postgres._connect as _connect
import wfrun.store.postgres._failures as _failures
import wfrun.store.postgres._leases as _leases
import wfrun.store.postgres._listen as _listen
import wfrun.store.postgres._schema as _schema
from wfrun.errors import (
    ClaimLost,
    ConflictError,
    LeftoverRecords,
    NotFoundError,
    StateError,
    StoreUnavailable,
    UsageError,
)
from wfrun.ids import check_run_id
from wfrun.model import SCHEMA_VERSION, Run
from wfrun.store._jsonenc import encoder
from wfrun.store.abc import Durability, ExecutionClaim
from wfrun.store.postgres._doctor import DoctorPart
from wfrun.store.postgres._failures import errors
from wfrun.store.queries import RunSummary, has_suspension

_dump = encoder(allow_nan=False)

_SAVE = """UPDATE wfrun_runs SET workflow = %(workflow)s, status = %(status)s,
    parent_run = %(parent)s, updated_at = %(updated)s, next_due = %(due)s,
    revision = revision + 1, run_schema = %(schema)s, snapshot = %(snapshot)s::json,
    created = %(created_text)s, updated = %(updated_text)s, waits_until = %(waits)s,
    suspended = %(suspended)s
    WHERE run_id = %(run_id)s AND revision = %(revision)s"""
_FENCE = " AND EXISTS (SELECT 1 FROM wfrun_claims c WHERE c.run_id = %(run_id)s AND c.token = %(token)s)"
_CREATE = """INSERT INTO wfrun_runs (run_id, workflow, status, parent_run, created_at, updated_at,
    next_due, revision, run_schema, snapshot, created, updated, waits_until, suspended)
    VALUES (%(run_id)s, %(workflow)s, %(status)s, %(parent)s, %(created)s, %(updated)s, %(due)s,
            %(revision)s, %(schema)s, %(snapshot)s::json, %(created_text)s, %(updated_text)s,
            %(waits)s,
            %(suspended)s)
    ON CONFLICT (run_id) DO NOTHING"""
# A new run's row, unless history or logs of an earlier run of its id are kept (its row was
# deleted by hand): a new run must not take them as its own (`LeftoverRecords`)
_CREATE_NEW = """INSERT INTO wfrun_runs (run_id, workflow, status, parent_run, created_at,
    updated_at, next_due, revision, run_schema, snapshot, created, updated, waits_until, suspended)
    SELECT %(run_id)s::text, %(workflow)s::text, %(status)s::text, %(parent)s::text,
        %(created)s::timestamptz, %(updated)s::timestamptz, %(due)s::timestamptz,
        %(revision)s::bigint, %(schema)s::integer, %(snapshot)s::json, %(created_text)s::text,
        %(updated_text)s::text, %(waits)s::text, %(suspended)s::boolean
    WHERE NOT EXISTS (SELECT 1 FROM wfrun_history WHERE run_id = %(run_id)s)
      AND NOT EXISTS (SELECT 1 FROM wfrun_logs WHERE run_id = %(run_id)s)
    ON CONFLICT (run_id) DO NOTHING"""
# A state change is one statement: the run's row (with its due entry) and its history events
# are written together, or not at all (nothing is inserted unless the row was); the second
# {} may add what else is written with it (the end of a claim: `_leases.RELEASED`)
_EVENTS = """INSERT INTO wfrun_history (run_id, event) SELECT changed.run_id, e FROM changed,
    json_array_elements(%(events)s::json) WITH ORDINALITY AS t(e, n) ORDER BY n"""
_CHANGE = "WITH changed AS ({} RETURNING run_id), logged AS (" + _EVENTS + \
    "){} SELECT count(*) FROM changed"


class PostgresStore(DoctorPart):
    """Runs in a PostgreSQL database (`postgresql://USER@HOST:PORT/DB`), shared by any number
    of processes; the tables are created in the first schema of the connection's search_path
    (`?options=-csearch_path%3DNAME` picks another than `public`)."""

    shared_acquire = True  # FOR UPDATE SKIP LOCKED: see _leases

    def __init__(self, url: str) -> None:
        self.url = url
        server = _connect.server(url)  # parses the URL: UsageError if malformed
        self.where = server.where
        server.lease = _leases.lease_seconds()  # WFRUN_LEASE: UsageError if malformed
        info = psycopg.conninfo.conninfo_to_dict(url)
        host = info.get("host") or "localhost"
        port = f":{info['port']}" if info.get("port") else ""
        self._address = f"postgresql://{host}{port}/{info.get('dbname') or ''}"
        self._key: bytes | None = None

    # -- runs ----------------------------------------------------------------------------------

    def _row(self, run: Run, revision: int) -> dict[str, Any]:
        data = run.to_dict()
        data["revision"] = revision
        summary = RunSummary.of(run)
        return {"run_id": run.run_id, "workflow": run.workflow, "status": run.status,
                "parent": summary.parent, "created": run.created_at,
                "updated": run.updated_at, "due": run.next_due(), "schema": SCHEMA_VERSION,
                "snapshot": _dump(data), "revision": revision, "waits": summary.next_due,
                "created_text": run.created_at, "updated_text": run.updated_at,
                "suspended": has_suspension(run)}

    def create(self, run: Run, events: Sequence[dict[str, Any]] = ()) -> None:
        check_run_id(run.run_id)
        row = self._row(run, 1)
        row["events"] = _dump(list(events))
        statement = _CHANGE.format(_CREATE_NEW, "")
        try:
            created = self._change(run.run_id, statement, row)
        except _failures.ConnectionLost:
            if run.run_id in self._server().holds():
                raise  # the lock's transaction went with the connection: the caller decides
            created = self._after_lost_create(run.run_id, statement, row)
        if not created:
            raise self._not_created(run.run_id)
        run.revision = 1

    def _not_created(self, run_id: str) -> ConflictError:
        """Why a create inserted nothing: the run exists, or what an earlier run of its id left
        is still kept (`LeftoverRecords`, with the DELETE that removes it)."""
        kept = self._fetch(None, """SELECT t.name, quote_ident(current_schema()), quote_literal(%s)
            FROM (VALUES ('wfrun_history'), ('wfrun_logs')) AS t(name)
            WHERE NOT EXISTS (SELECT 1 FROM wfrun_runs WHERE run_id = %s)
              AND CASE t.name WHEN 'wfrun_history'
                  THEN EXISTS (SELECT 1 FROM wfrun_history WHERE run_id = %s)
                  ELSE EXISTS (SELECT 1 FROM wfrun_logs WHERE run_id = %s) END
            ORDER BY t.name""", [run_id] * 4)
        if not kept:
            return ConflictError(f"run {run_id} already exists")
        delete = " ".join(f"DELETE FROM {schema}.{table} WHERE run_id = {literal};"
                          for table, schema, literal in kept)
        return LeftoverRecords(
            f"run {run_id} cannot be created: the history or logs of an earlier run {run_id} "
            f"in {self.label()}, whose row was deleted, are still kept; remove them ({delete}) "
            "or choose another run id")

    def _after_lost_create(self, run_id: str, statement: str, row: dict[str, Any]) -> int:
        """Settle a create whose connection was lost before the server's answer came: asked
        on another connection, the run's row says whether it committed (this very state: 1),
        another process created the run (0), or nothing was written, and the create is sent
        once more. A create is never applied twice, and a caller is not told to retry (over
        HTTP, a 503 that starts a second run) what was in fact stored."""
        stored = self._fetch(None, "SELECT snapshot::text FROM wfrun_runs WHERE run_id = %s",
                             [run_id])
        if stored:
            return int(json.loads(stored[0][0]) == json.loads(row["snapshot"]))
        return self._change(run_id, statement, row)

    def _change(self, run_id: str, statement: str, params: dict[str, Any]) -> int:
        """Write one state change of a run and commit it (its new row and due entry, and its
        history events: `_CHANGE`); how many rows it changed (0: the row was not there as
        expected, nothing written). Under this thread's lock of the run, the lock's transaction
        commits in the same round trip (a pipeline); else the statement is a transaction of
        its own. The one place a state change is sent: whatever must commit with every state
        change goes in this transaction (the NOTIFY waking the workers comes from a trigger on
        wfrun_runs, see `_schema`)."""
        hold = self._server().holds().get(run_id)
        with self._conn(run_id) as conn:
            if hold is None:
                changed: int = conn.execute(statement, params).fetchone()[0]
                return changed
            try:
                with conn.pipeline():
                    cursor = conn.execute(statement, params)
                    conn.execute("COMMIT")
            except psycopg.OperationalError as exc:
                if not _failures.lost(exc):
                    raise
                hold.abort()
                raise StoreUnavailable(
                    f"committing to PostgreSQL {self.where} failed: {_failures.reason_of(exc)}; "
                    "the change may not be saved, check the run before trying again") from None
            hold.open = False  # committed: the lock ends until the next operation
            changed = cursor.fetchone()[0]
            return changed

    def load(self, run_id: str, known: Run | None = None) -> Run:
        check_run_id(run_id)
        if known is not None and self._unchanged(run_id, known):
            return known
        rows = self._fetch(run_id, "SELECT revision, run_schema, snapshot::text FROM wfrun_runs "
                                   "WHERE run_id = %s", [run_id])
        if not rows:
            raise NotFoundError(f"no run {run_id} in {self._place}")
        return self._parse(run_id, *rows[0])

    def _unchanged(self, run_id: str, known: Run) -> bool:
        """True if `known` is still the stored state of the run (see `load`)."""
        hold = self._server().holds().get(run_id)
        if hold is not None and not hold.open:
            with self._conn(run_id):
                pass  # the lock taken again (a save ended its transaction), its revision read
        if hold is not None and hold.revision is not None:
            # under the run's lock, read as it was taken: no one can have saved since
            return hold.revision == known.revision
        rows = self._fetch(run_id, "SELECT revision FROM wfrun_runs WHERE run_id = %s",
                           [run_id])
        return bool(rows) and rows[0][0] == known.revision

    def save(self, run: Run, events: Sequence[dict[str, Any]] = (), *,
             durability: Durability = Durability.COMMIT,
             release: ExecutionClaim | None = None) -> None:
        check_run_id(run.run_id)  # every save is one committed transaction, whatever durability
        if release is None:
            self._save(run, events, self._server().token(run.run_id))
            return
        claim = release
        if not (isinstance(claim, _leases.LeaseClaim) and claim.of(self._server())
                and claim.run_id == run.run_id):  # (not a claim of this store)
            self._save(run, events, self._server().token(run.run_id))
            claim.release()
            return
        # Another thread of this process may save the run as soon as this save's COMMIT lets
        # the state lock go; its save must not carry this claim's token, whose row goes with
        # this save (it would be refused as if the lease were lost): the token leaves this
        # process's claims first, and comes back if this save fails.
        server = self._server()
        with server.claims_mutex:
            taken = [(held, held.pop(run.run_id)) for held in (server.claims, server.lost)
                     if held.get(run.run_id) == claim.token]
        try:
            self._save(run, events, claim.token, release=True)  # fenced by the claim's token
        except BaseException:
            with server.claims_mutex:
                for held, token in taken:
                    held.setdefault(run.run_id, token)
            raise
        claim.ended_with_save()

    def _save(self, run: Run, events: Sequence[dict[str, Any]], token: int | None,
              release: bool = False) -> None:
        """`save`, fenced by `token` if given; with `release`, the claim of that token ends in
        the same statement (its row deleted, if the save is made: `_leases.RELEASED`)."""
        row = self._row(run, run.revision + 1)
        row["revision"] = run.revision
        row["events"] = _dump(list(events))
        statement = _SAVE
        if token:
            row["token"] = token
            statement += _FENCE
        ended = f", {_leases.RELEASED}" if release and token else ""
        if not self._change(run.run_id, _CHANGE.format(statement, ended), row):
            # nothing was written; why (read afresh: the change's transaction has ended)
            found = self._fetch(None, "SELECT revision FROM wfrun_runs WHERE run_id = %s",
                                [run.run_id])
            if not found:
                raise NotFoundError(f"no run {run.run_id} in {self._place}")
            if found[0][0] == run.revision:
                raise ClaimLost(_leases.lost_lease(run.run_id, self._server().lease))
            raise ConflictError(
                f"run {run.run_id} changed while this command worked on it "
                f"(revision {found[0][0]}, expected {run.revision}); try again")
        run.revision += 1

    def exists(self, run_id: str) -> bool:
        check_run_id(run_id)
        return bool(self._fetch(run_id, "SELECT 1 FROM wfrun_runs WHERE run_id = %s", [run_id]))

    def delete(self, run_id: str) -> None:
        check_run_id(run_id)
        with self.lock(run_id):
            run = self.load(run_id)  # NotFoundError if it is gone
            if not run.finished:
                raise ConflictError(f"run {run_id} is {run.status}; only a finished run is deleted")
            claim = self.claim(run_id)
            if claim is None:
                raise ConflictError(f"run {run_id} is busy: another process holds it")
            try:
                with self._conn(run_id) as conn:
                    for table in ("wfrun_history", "wfrun_logs", "wfrun_runs"):
                        conn.execute(f"DELETE FROM {table} WHERE run_id = %s", [run_id])
                    self._commit(self._server().holds().get(run_id))
            finally:
                claim.release()

    def run_ids(self, prefix: str = "") -> list[str]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._fetch(None, "SELECT run_id FROM wfrun_runs WHERE run_id LIKE %s "
                                 "ORDER BY run_id", [pattern])
        return [row[0] for row in rows]

    # -- the due index ---------------------------------------------------------------------------

    def due(self, now: str, limit: int | None = None) -> list[str]:
        rows = self._fetch(None, "SELECT run_id FROM wfrun_runs WHERE next_due <= %s "
                                 "ORDER BY next_due, run_id LIMIT %s", [now, limit])
        return [row[0] for row in rows]

    def reindex(self, run_id: str) -> None:
        try:
            run = self.load(run_id)
        except NotFoundError:
            return  # the index is a column of the run's row: gone with it
        with self._conn(run_id) as conn:
            conn.execute("UPDATE wfrun_runs SET next_due = %s WHERE run_id = %s "
                         "AND next_due IS DISTINCT FROM %s::timestamptz",
                         [run.next_due(), run_id, run.next_due()])
            self._commit(self._server().holds().get(run_id))

    # -- execution claims --------------------------------------------------------------------------

    def claim(self, run_id: str) -> ExecutionClaim | None:
        check_run_id(run_id)
        return _leases.claim(self._server(), run_id)

    def is_claimed(self, run_id: str) -> bool:
        check_run_id(run_id)
        return _leases.is_claimed(self._server(), run_id)

    def acquire_due(self, now: str, limit: int | None = None) -> list[ExecutionClaim]:
        def parse(run_id: str, revision: int, run_schema: int, text: str) -> Run | None:
            try:
                return self._parse(run_id, revision, run_schema, text)
            except StateError:
                return None  # (the run's `load` says why)

        return _leases.acquire(self._server(), now, limit, parse)

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        _listen.wait_for_work(self._server(), timeout, stop)

    # -- moving state between stores (wfrun state copy) --------------------------------------

    def has_state(self) -> bool:
        try:  # a connection of its own: the store's first one would create the tables
            conn = psycopg.connect(self._server().conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise _failures.connect_error(self.url, self.where, exc) from None
        with errors(self.where), conn:
            row = conn.execute("SELECT current_schema(), to_regclass(quote_ident("
                               "current_schema()) || '.wfrun_runs') IS NOT NULL, "
                               "has_schema_privilege(current_schema(), 'CREATE'), "
                               "current_setting('search_path'), current_user").fetchone()
            if row is None or row[0] is None:
                raise _schema.no_schema(conn, self.where)  # (doctor: exit 5)
            _schema.check_path(conn, self.where, row[0], row[3], row[4])
            self._schema_seen = str(row[0])
            if not row[1] and not row[2]:  # its first write could not make the tables
                raise _schema.no_create(conn, self.where)
        return bool(row[1])

    def label(self) -> str:
        return self._with_schema(self._address)

    def import_run(self, run: Run, history: list[dict[str, Any]],
                   logs: list[dict[str, Any]]) -> bool:
        from wfrun.store._transfer import check_stored, staged  # only `wfrun state copy`

        check_run_id(run.run_id)
        staged(run)  # (a run never stored is refused)
        try:
            row = self._row(run, run.revision)
            events, records = _dump(history), _dump(logs)
        except (TypeError, ValueError) as exc:
            raise StateError(f"run {run.run_id} cannot be stored in {self._place}: it holds a "
                             f"value PostgreSQL's json cannot keep ({exc})") from None
        key = self._server().key("lock", run.run_id)

        def store() -> int:
            with self._conn() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])  # the run's state lock
                created: int = conn.execute(_CREATE, row).rowcount
                if created:  # (rows a run deleted by hand left are replaced, not added to)
                    for table, column, text in (("wfrun_history", "event", events),
                                                ("wfrun_logs", "record", records)):
                        conn.execute(f"DELETE FROM {table} WHERE run_id = %s", [run.run_id])
                        conn.execute(f"INSERT INTO {table} (run_id, {column}) SELECT %s, e FROM "
                                     "json_array_elements(%s::json) WITH ORDINALITY AS t(e, n) "
                                     "ORDER BY n", [run.run_id, text])
                return created

        if self._again(None, store, write=True):  # (done twice, the second finds it there)
            return True
        check_stored(self, run, history, logs, self._place)
        return False

    def stored_secret_key(self) -> bytes | None:
        rows = self._fetch(None, "SELECT secret FROM wfrun_keys WHERE name = 'url'", [])
        if not rows:
            return None
        key = bytes(rows[0][0])
        if len(key) < 32:
            raise StateError(f"the URL signing key in {self._table('wfrun_keys')} is "
                             "shorter than 32 bytes; delete its row to make a new one "
                             "(links already sent stop working)")
        return key

    def adopt_secret_key(self, key: bytes) -> bool:
        if len(key) < 32:
            raise UsageError(f"a URL signing key of {len(key)} byte(s) cannot be adopted: it "
                             "needs at least 32")

        def adopt() -> int:
            with self._conn() as conn:
                added: int = conn.execute("INSERT INTO wfrun_keys (name, secret) VALUES "
                                          "('url', %s) ON CONFLICT (name) DO NOTHING",
                                          [key]).rowcount
                return added

        adopted = self._again(None, adopt, write=True)
        if self.stored_secret_key() != key:
            raise ConflictError(
                f"the URL signing key in {self._table('wfrun_keys')} differs from the one "
                "being copied: resume and cancel links signed by either would stop working; "
                "copy into a store that has no key yet or the same one")
        self._key = key
        return bool(adopted)

    def schedule_workflows(self) -> list[str]:
        return sorted(row[0] for row in self._fetch(
            None, "SELECT workflow FROM wfrun_schedules", []))
