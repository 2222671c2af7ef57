"""The PostgreSQL store's records beside the runs: each run's history and logs, the URL
signing key, the manifest cache, start tokens and schedule states (a part of PostgresStore,
over its connections, `_transactions`)."""

from __future__ import annotations

import json
import os
from typing import Any

from wfrun.errors import ConflictError, StateError
from wfrun.ids import check_run_id
from wfrun.store._jsonenc import encoder
from wfrun.store._manifest_cache import check_digest
from wfrun.store._schedule_state import check_workflow_name, state_json
from wfrun.store.abc import token_with_hash
from wfrun.store.postgres._transactions import TransactionPart

_dump = encoder(allow_nan=False)


_FENCED = " WHERE EXISTS (SELECT 1 FROM wfrun_claims c WHERE c.run_id = %s AND c.token = %s)"

class RecordsPart(TransactionPart):
    """History, logs, the URL key, cached manifests, start tokens and schedule states."""

    where: str  # the database, for messages
    _key: bytes | None  # the URL signing key, once read

    # -- history and logs --------------------------------------------------------------------------

    # (history and log records written under this process's lease, fenced by its token as
    # saves are: a worker that lost its lease adds nothing to the run)
    def append_history(self, run_id: str, events: list[dict[str, Any]]) -> None:
        check_run_id(run_id)
        if not events:
            return
        text, token = _dump(events), self._server().token(run_id)

        def append() -> None:
            with self._conn(run_id) as conn:
                conn.execute("INSERT INTO wfrun_history (run_id, event) SELECT %s, e FROM "
                             "json_array_elements(%s::json) WITH ORDINALITY AS t(e, n)"
                             + (_FENCED if token else "") + " ORDER BY n",
                             [run_id, text, *([run_id, token] if token else [])])

        self._again(run_id, append, write=True)

    def read_history(self, run_id: str) -> list[dict[str, Any]]:
        check_run_id(run_id)
        rows = self._fetch(run_id, "SELECT event::text FROM wfrun_history WHERE run_id = %s "
                                   "ORDER BY seq", [run_id])
        return [event for event in (json.loads(row[0]) for row in rows) if isinstance(event, dict)]

    def append_log(self, run_id: str, records: list[dict[str, Any]]) -> None:
        check_run_id(run_id)
        if not records:
            return
        key, text = self._server().key("log", run_id), _dump(records)
        token = self._server().token(run_id)
        fence = _FENCED if token else ""

        def append() -> None:
            with self._conn() as conn, conn.transaction():
                # one appender of a run at a time, so that its records commit in `seq` order
                # and a reader's cursor never passes one that commits later
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
                conn.execute("INSERT INTO wfrun_logs (run_id, record) SELECT %s, e FROM "
                             "json_array_elements(%s::json) WITH ORDINALITY AS t(e, n)"
                             + fence + " ORDER BY n",
                             [run_id, text, *([run_id, token] if token else [])])

        self._again(None, append, write=True)

    def read_logs(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        check_run_id(run_id)
        rows = self._fetch(None, "SELECT seq, record::text FROM wfrun_logs WHERE run_id = %s "
                                 "AND seq > %s ORDER BY seq", [run_id, cursor])
        records = []
        for _seq, text in rows:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records, (rows[-1][0] if rows else cursor)

    # -- the URL key and the manifest cache ----------------------------------------------------

    def secret_key(self) -> bytes:
        if self._key is None:
            def read_or_create() -> Any:
                with self._conn() as conn:
                    row = conn.execute(
                        "SELECT secret FROM wfrun_keys WHERE name = 'url'").fetchone()
                    if row is None:  # created once: a concurrent creator's key wins, and is read
                        conn.execute("INSERT INTO wfrun_keys (name, secret) VALUES ('url', %s) "
                                     "ON CONFLICT (name) DO NOTHING", [os.urandom(32)])
                        row = conn.execute(
                            "SELECT secret FROM wfrun_keys WHERE name = 'url'").fetchone()
                    return row[0]

            key = bytes(self._again(None, read_or_create))
            if len(key) < 32:
                raise StateError(f"the URL signing key in {self._table('wfrun_keys')} is "
                                 "shorter than 32 bytes; delete its row to make a new one "
                                 "(links already sent stop working)")
            self._key = key
        return self._key

    def cached_manifest(self, digest: str) -> Any:
        check_digest(digest)
        try:
            with self._conn() as conn:
                row = conn.execute("SELECT document::text FROM wfrun_manifests WHERE digest = %s",
                                   [digest]).fetchone()
            return None if row is None else json.loads(row[0])
        except (StateError, ValueError, RecursionError):
            return None

    def cache_manifest(self, digest: str, document: Any) -> None:
        check_digest(digest)
        from wfrun.store._manifest_cache import encode

        body = encode(document)
        if body is None:
            return
        try:
            with self._conn() as conn:
                conn.execute("INSERT INTO wfrun_manifests (digest, document) VALUES (%s, %s::json) "
                             "ON CONFLICT (digest) DO NOTHING", [digest, body.decode()])
        except StateError:
            pass  # a cache: the next command parses the manifest again

    # -- start tokens ------------------------------------------------------------------------

    def save_token(self, record: dict[str, Any]) -> None:
        with self._conn() as conn:
            saved = conn.execute(
                "INSERT INTO wfrun_tokens (name, workflow, hash, created_at, revoked, revoked_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                [record["name"], record["workflow"], record["hash"], record["created_at"],
                 bool(record.get("revoked")), record.get("revoked_at")]).rowcount
        if not saved:
            raise ConflictError(f"a token named {record['name']!r} exists already")

    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        return token_with_hash(self.tokens(), token_hash)

    def tokens(self) -> list[dict[str, Any]]:
        with self._conn() as conn:
            rows = conn.execute(f"SELECT {_TOKEN} FROM wfrun_tokens ORDER BY seq").fetchall()
        return [_token(row) for row in rows]

    def revoke_token(self, name: str, at: str) -> dict[str, Any] | None:
        with self._conn() as conn:
            conn.execute("UPDATE wfrun_tokens SET revoked = true, revoked_at = %s "
                         "WHERE name = %s AND NOT revoked", [at, name])
            row = conn.execute(f"SELECT {_TOKEN} FROM wfrun_tokens WHERE name = %s",
                               [name]).fetchone()
        return None if row is None else _token(row)

    # -- schedules -----------------------------------------------------------------------------

    def schedule_state(self, workflow: str) -> tuple[dict[str, Any] | None, int]:
        check_workflow_name(workflow)
        with self._conn() as conn:
            row = conn.execute("SELECT revision, state::text FROM wfrun_schedules "
                               "WHERE workflow = %s", [workflow]).fetchone()
        if row is None:
            return None, 0
        try:
            state = json.loads(row[1])
        except (ValueError, RecursionError):
            state = None
        if not isinstance(state, dict) or row[0] < 1:
            raise StateError(f"the schedule state of workflow '{workflow}' in "
                             f"{self._table('wfrun_schedules')} is damaged; delete its row and the "
                             "schedule starts afresh from the next tick")
        return state, int(row[0])

    def save_schedule_state(self, workflow: str, state: dict[str, Any],
                            expected_revision: int) -> int:
        check_workflow_name(workflow)
        text = state_json(workflow, state)
        with self._conn() as conn:
            if expected_revision == 0:
                saved = conn.execute(
                    "INSERT INTO wfrun_schedules (workflow, revision, state) "
                    "VALUES (%s, 1, %s::json) ON CONFLICT (workflow) DO NOTHING",
                    [workflow, text]).rowcount
            else:
                saved = conn.execute(
                    "UPDATE wfrun_schedules SET revision = revision + 1, state = %s::json "
                    "WHERE workflow = %s AND revision = %s",
                    [text, workflow, expected_revision]).rowcount
            if not saved:
                row = conn.execute("SELECT revision FROM wfrun_schedules WHERE workflow = %s",
                                   [workflow]).fetchone()
        if not saved:
            raise ConflictError(
                f"the schedule state of workflow '{workflow}' changed meanwhile (revision "
                f"{row[0] if row else 0}, expected {expected_revision}); try again")
        return expected_revision + 1


_TOKEN = "name, workflow, hash, created_at, revoked, revoked_at"


def _token(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(("name", "workflow", "hash", "created_at", "revoked", "revoked_at"), row,
                    strict=True))


