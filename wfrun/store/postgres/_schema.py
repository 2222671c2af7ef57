"""The PostgreSQL store's tables, created and migrated by wfrun itself.

`wfrun_schema` holds one row per migration applied. Every process checks the version once, on
its first connection; creating or migrating takes an advisory lock first, so that any number of
processes starting at once against an empty schema create it exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from wfrun.errors import StateError, StoreMissing
from wfrun.store.postgres._failures import reason_of

Step = str | Callable[[Any], None]  # a statement, or a function given the connection


def _backfill_summaries(conn: Any) -> None:
    """Migration 2's data: the summary columns of the runs stored before it."""
    from wfrun.model import Run
    from wfrun.store.queries import RunSummary, has_suspension

    rows = conn.execute("SELECT run_id, snapshot::text FROM wfrun_runs").fetchall()
    for run_id, text in rows:
        try:
            run = Run.from_dict(json.loads(text))
            values = [run.created_at, run.updated_at, RunSummary.of(run).next_due,
                      has_suspension(run)]
        except (ValueError, KeyError, TypeError, AttributeError):  # a damaged row: listed as is
            values = ["", "", None, False]
        conn.execute("UPDATE wfrun_runs SET created = %s, updated = %s, waits_until = %s, "
                      "suspended = %s WHERE run_id = %s", [*values, run_id])


# Each migration is a list of steps, applied in one transaction; never edit one that has
# shipped: add the next. Tables are prefixed so that wfrun can share a schema with others.
MIGRATIONS: list[list[Step]] = [
    [  # 1: runs, their history and logs, the URL key, execution claims, parsed manifests,
        # start tokens and schedule states
        """CREATE TABLE wfrun_runs (
            run_id text COLLATE "C" PRIMARY KEY,
            workflow text NOT NULL,
            status text NOT NULL,
            parent_run text COLLATE "C",
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            next_due timestamptz,
            revision bigint NOT NULL,
            run_schema integer NOT NULL,
            snapshot json NOT NULL
        )""",
        # the due index: tick reads only the rows due, in due order
        "CREATE INDEX wfrun_runs_due ON wfrun_runs (next_due, run_id) WHERE next_due IS NOT NULL",
        "CREATE INDEX wfrun_runs_newest ON wfrun_runs (created_at DESC, run_id DESC)",
        "CREATE INDEX wfrun_runs_status ON wfrun_runs (status, created_at DESC)",
        "CREATE INDEX wfrun_runs_parent ON wfrun_runs (parent_run) WHERE parent_run IS NOT NULL",
        """CREATE TABLE wfrun_history (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text COLLATE "C" NOT NULL,
            event json NOT NULL
        )""",
        "CREATE INDEX wfrun_history_run ON wfrun_history (run_id, seq)",
        """CREATE TABLE wfrun_logs (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text COLLATE "C" NOT NULL,
            record json NOT NULL
        )""",
        "CREATE INDEX wfrun_logs_run ON wfrun_logs (run_id, seq)",
        """CREATE TABLE wfrun_keys (
            name text PRIMARY KEY,
            secret bytea NOT NULL CHECK (length(secret) >= 32),
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        "REVOKE ALL ON wfrun_keys FROM PUBLIC",
        "CREATE SEQUENCE wfrun_claim_tokens",
        """CREATE TABLE wfrun_claims (
            run_id text COLLATE "C" PRIMARY KEY,
            owner text NOT NULL,
            token bigint NOT NULL,
            acquired_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz
        )""",
        """CREATE TABLE wfrun_manifests (
            digest text PRIMARY KEY,
            document json NOT NULL,
            cached_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE wfrun_tokens (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            name text PRIMARY KEY,
            workflow text NOT NULL,
            hash text NOT NULL,
            created_at text NOT NULL,
            revoked boolean NOT NULL DEFAULT false,
            revoked_at text
        )""",
        "REVOKE ALL ON wfrun_tokens FROM PUBLIC",
        """CREATE TABLE wfrun_schedules (
            workflow text PRIMARY KEY,
            revision bigint NOT NULL,
            state json NOT NULL
        )""",
    ],
    [  # 2: what `list` and `pending` read, as columns, so that they are answered from indexes
        "ALTER TABLE wfrun_runs ADD COLUMN created text COLLATE \"C\", "
        "ADD COLUMN updated text, ADD COLUMN waits_until text, "
        "ADD COLUMN suspended boolean NOT NULL DEFAULT false",
        _backfill_summaries,
        "ALTER TABLE wfrun_runs ALTER COLUMN created SET NOT NULL, "
        "ALTER COLUMN updated SET NOT NULL",
        "DROP INDEX wfrun_runs_newest",
        "DROP INDEX wfrun_runs_status",
        # newest first (created, then run id), top-level runs, or one status, or one workflow
        "CREATE INDEX wfrun_runs_list ON wfrun_runs (created DESC, run_id DESC) "
        "WHERE parent_run IS NULL",
        "CREATE INDEX wfrun_runs_by_status ON wfrun_runs (status, created DESC, run_id DESC)",
        "CREATE INDEX wfrun_runs_by_workflow ON wfrun_runs (workflow, created DESC, run_id DESC)",
        "CREATE INDEX wfrun_runs_pending ON wfrun_runs (workflow) WHERE suspended",
    ],
    [  # 3: leases (every claim expires; see _leases) and wake-ups: a run inserted with a due
        # time, or whose due time changes, notifies channel wfrun_work ('SCHEMA.RUN_ID') in
        # the same transaction (see _listen). Written to be applied again safely.
        "UPDATE wfrun_claims SET expires_at = acquired_at WHERE expires_at IS NULL",
        "ALTER TABLE wfrun_claims ALTER COLUMN expires_at SET NOT NULL",
        """CREATE OR REPLACE FUNCTION wfrun_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('wfrun_work', TG_TABLE_SCHEMA || '.' || NEW.run_id);
            RETURN NULL;
        END $$""",
        "DROP TRIGGER IF EXISTS wfrun_runs_new ON wfrun_runs",
        "CREATE TRIGGER wfrun_runs_new AFTER INSERT ON wfrun_runs FOR EACH ROW "
        "WHEN (NEW.next_due IS NOT NULL) EXECUTE FUNCTION wfrun_notify_work()",
        "DROP TRIGGER IF EXISTS wfrun_runs_due ON wfrun_runs",
        "CREATE TRIGGER wfrun_runs_due AFTER UPDATE OF next_due ON wfrun_runs FOR EACH ROW "
        "WHEN (NEW.next_due IS NOT NULL AND NEW.next_due IS DISTINCT FROM OLD.next_due) "
        "EXECUTE FUNCTION wfrun_notify_work()",
    ],
]
VERSION = len(MIGRATIONS)


def migrate(conn: Any, lock_key: int, where: str) -> None:
    """Bring the schema `conn` writes to (the first of its search_path) to `VERSION`.

    Cheap when it is current (one query). Refuses a schema migrated by a newer wfrun, and a
    search_path whose first schema does not exist or may not be used (see `check_path`).
    `lock_key` is the advisory lock serialising migrations of this schema; `where` names the
    database for messages."""
    current = _version(conn, where)
    if current == VERSION:
        return
    if current is not None and current > VERSION:
        raise StateError(f"the wfrun tables in {where} are at schema version {current}, newer "
                         f"than this wfrun knows ({VERSION}); upgrade wfrun")
    if current is None:
        orphans, may_create = conn.execute(
            "SELECT to_regclass(quote_ident(current_schema()) || '.wfrun_runs') IS NOT NULL, "
            "has_schema_privilege(current_schema(), 'CREATE')").fetchone()
        if orphans:
            raise StateError(f"the wfrun tables in {where} have lost their version table, "
                             "wfrun_schema (dropped by hand?), so wfrun cannot tell which "
                             "migrations they have; restore it from a backup "
                             "(docs/postgresql.md#backups)")
        if not may_create:
            raise no_create(conn, where)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
            conn.execute("CREATE TABLE IF NOT EXISTS wfrun_schema (version integer PRIMARY KEY, "
                         "migrated_at timestamptz NOT NULL DEFAULT now())")
            row = conn.execute("SELECT max(version) FROM wfrun_schema").fetchone()
            done = row[0] or 0  # another process may have migrated while this one waited
            for version in range(done + 1, VERSION + 1):
                for step in MIGRATIONS[version - 1]:
                    if callable(step):
                        step(conn)
                    else:
                        conn.execute(step)
                conn.execute("INSERT INTO wfrun_schema (version) VALUES (%s)", [version])
    except psycopg.errors.InsufficientPrivilege as exc:  # tables another user owns, say
        schema, user = _names(conn)
        raise StateError(f"user {user} may not migrate wfrun's tables in schema {schema} of "
                         f"{where} to version {VERSION} ({reason_of(exc)}); run this wfrun "
                         "once as the user who owns them, or grant this one CREATE on the "
                         f"schema and ownership of them (GRANT USAGE, CREATE ON SCHEMA {schema} "
                         f"TO {user})") from None


class NoSchema(StoreMissing):
    """The connection's search_path names no schema that exists, or its first schema does not
    exist: wfrun's tables cannot be made, and there are none to read (`list`, `pending` and
    `tick` say so and find nothing)."""


def no_schema(conn: Any, where: str) -> StateError:
    """The error of a connection whose search_path names no schema it may use (`where`: the
    database, for the message): NoSchema if none of them exists, else a StateError saying
    which one the user has no USAGE on, and what to grant."""
    path, user = conn.execute("SELECT current_setting('search_path'), current_user").fetchone()
    names = [name for name, _named in _path_names(path, user)]
    row = conn.execute(
        "SELECT quote_ident(n.nspname), quote_ident(current_user) FROM pg_namespace n "
        "WHERE n.nspname = ANY(%s) ORDER BY array_position(%s, n.nspname::text) LIMIT 1",
        [names, names]).fetchone()
    if row is not None:  # (current_schema() skips a schema the user may not use)
        return _no_usage(row[0], row[1], where, path)
    return NoSchema(f"no schema of search_path {path!r} exists in {where} to keep wfrun's "
                    "tables; create it (CREATE SCHEMA ...) or change the URL's "
                    "options=-csearch_path=...")


def check_path(conn: Any, where: str, current: str, path: str, user: str) -> None:
    """Refuse a search_path whose first schema, named in it, is not `current` (the schema the
    connection uses, current_schema()): PostgreSQL skips a schema that does not exist or that
    the user may not use for the next one (`public`, say), where wfrun would then make and read
    its tables unsaid. A StateError saying what to grant for a schema the user may not use,
    NoSchema for one that does not exist. `"$user"` (the default search_path's first entry)
    and `pg_temp` are skipped, as PostgreSQL skips them. Costs a query only when `current` is
    not the first schema named."""
    for name, named in _path_names(path, user):
        if name == current:
            return
        if not named or name == "pg_temp":
            continue
        quoted, exists, user_q = conn.execute(
            "SELECT quote_ident(%s), EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s), "
            "quote_ident(current_user)", [name, name]).fetchone()
        if exists:
            raise _no_usage(quoted, user_q, where, path)
        raise NoSchema(f"schema {quoted}, the first of search_path {path!r}, does not exist in "
                       f"{where} to keep wfrun's tables (they would go to schema {current} "
                       f"instead); create it (CREATE SCHEMA {quoted}) or change the URL's "
                       "options=-csearch_path=...")


def _no_usage(schema: str, user: str, where: str, path: str) -> StateError:
    """The error of a search_path whose first schema, `schema`, `user` may not use (both
    quoted as SQL identifiers)."""
    return StateError(f"user {user} may not use schema {schema} of {where} (the first of "
                      f"search_path {path!r}), where wfrun's tables are kept; grant it "
                      f"(GRANT USAGE, CREATE ON SCHEMA {schema} TO {user}) or change the URL's "
                      "options=-csearch_path=...")


def no_create(conn: Any, where: str) -> StateError:
    """The error of a connection whose schema holds no wfrun tables yet and that may not create
    them there (no CREATE on the schema)."""
    schema, user = _names(conn)
    return StateError(f"user {user} may not create wfrun's tables in schema {schema} of {where} "
                      f"(it has no CREATE on that schema); grant it (GRANT USAGE, CREATE ON "
                      f"SCHEMA {schema} TO {user}), or run wfrun there once as a user who may")


def _names(conn: Any) -> tuple[str, str]:
    """The current schema and user, quoted as SQL identifiers (for a GRANT to copy)."""
    row = conn.execute("SELECT quote_ident(current_schema()), quote_ident(current_user)"
                       ).fetchone()
    return str(row[0]), str(row[1])


def _path_names(path: str, user: str) -> list[tuple[str, bool]]:
    """The schema names a search_path lists, in order, each with whether the path names it
    (False: `"$user"`, the current user's)."""
    names = []
    for item in (part.strip() for part in path.split(",")):
        if item.startswith('"') and item.endswith('"') and len(item) > 1:
            item = item[1:-1].replace('""', '"')
        else:
            item = item.lower()
        if item == "$user":
            names.append((user, False))
        elif item:
            names.append((item, True))
    return names


def _version(conn: Any, where: str) -> int | None:
    """The schema version applied (None: no wfrun tables yet). NoSchema if the search_path
    names no existing schema to create them in, or its first schema does not exist;
    StateError if the user may not use it."""
    row = conn.execute(
        "SELECT current_schema(), "
        "to_regclass(quote_ident(current_schema()) || '.wfrun_schema') IS NOT NULL, "
        "current_setting('search_path'), current_user").fetchone()
    if row[0] is None:
        raise no_schema(conn, where)
    check_path(conn, where, row[0], row[2], row[3])
    if not row[1]:
        return None
    found = conn.execute("SELECT max(version) FROM wfrun_schema").fetchone()
    return int(found[0]) if found[0] is not None else None


# What the migrations leave in the schema and wfrun needs, for `wfrun doctor`
# (tests/store/test_postgres_schema.py checks that a fresh schema has exactly this).
TABLES: dict[str, tuple[str, ...]] = {
    "wfrun_schema": ("version", "migrated_at"),
    "wfrun_runs": ("run_id", "workflow", "status", "parent_run", "created_at", "updated_at",
                   "next_due", "revision", "run_schema", "snapshot", "created", "updated",
                   "waits_until", "suspended"),
    "wfrun_history": ("seq", "run_id", "event"),
    "wfrun_logs": ("seq", "run_id", "record"),
    "wfrun_keys": ("name", "secret", "created_at"),
    "wfrun_claims": ("run_id", "owner", "token", "acquired_at", "expires_at"),
    "wfrun_manifests": ("digest", "document", "cached_at"),
    "wfrun_tokens": ("seq", "name", "workflow", "hash", "created_at", "revoked", "revoked_at"),
    "wfrun_schedules": ("workflow", "revision", "state"),
}
INDEXES = {  # each index, and the table it is on
    **{f"{table}_pkey": table for table in TABLES},
    **dict.fromkeys(("wfrun_runs_due", "wfrun_runs_parent", "wfrun_runs_list",
                     "wfrun_runs_by_status", "wfrun_runs_by_workflow", "wfrun_runs_pending"),
                    "wfrun_runs"),
    "wfrun_history_run": "wfrun_history", "wfrun_logs_run": "wfrun_logs",
}
SEQUENCES = {  # each sequence, and the table whose identity column owns it (None: its own)
    "wfrun_claim_tokens": None, "wfrun_history_seq_seq": "wfrun_history",
    "wfrun_logs_seq_seq": "wfrun_logs", "wfrun_tokens_seq_seq": "wfrun_tokens",
}
TRIGGERS = ("wfrun_runs_new", "wfrun_runs_due")  # on wfrun_runs: they wake the workers


def schema_problems(conn: Any) -> list[tuple[str, str]]:
    """What is missing from the wfrun tables of `conn`'s schema (a table, column, index,
    sequence or enabled trigger), as (relation, sentence) pairs; reads the catalog only."""
    rows = conn.execute(
        "SELECT c.relname, c.relkind, a.attname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND c.relkind = 'r' AND a.attnum > 0 "
        "AND NOT a.attisdropped "
        "WHERE n.nspname = current_schema() AND c.relname LIKE 'wfrun\\_%'").fetchall()
    kinds = {name: kind for name, kind, _column in rows}
    columns = {(name, column) for name, _kind, column in rows if column is not None}
    triggers = {name for (name,) in conn.execute(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
        "AND c.relname = 'wfrun_runs' AND NOT t.tgisinternal AND t.tgenabled <> 'D'").fetchall()}
    found: list[tuple[str, str]] = []
    for table, names in TABLES.items():
        if kinds.get(table) != "r":
            found.append((table, f"table {table} is missing"))
            continue
        found.extend((table, f"column {table}.{name} is missing")
                     for name in names if (table, name) not in columns)
    tables = {table for table in TABLES if kinds.get(table) == "r"}  # (the others are said)
    found.extend((table, f"index {name} on {table} is missing") for name, table in INDEXES.items()
                 if table in tables and kinds.get(name) != "i")
    found.extend((owner or name, f"sequence {name} is missing")
                 for name, owner in SEQUENCES.items()
                 if (owner is None or owner in tables) and kinds.get(name) != "S")
    if "wfrun_runs" in tables:
        found.extend(("wfrun_runs", f"trigger {name} on wfrun_runs is missing or disabled "
                                    "(workers are not woken when a run becomes due)")
                     for name in TRIGGERS if name not in triggers)
    return found
