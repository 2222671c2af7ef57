"""Execution claims on PostgreSQL: leases with fencing tokens, renewed while their holder lives.

A claim is a row of `wfrun_claims`: the run, its owner (host and pid), a fencing token from the
sequence `wfrun_claim_tokens` and when the lease expires (`expires_at`, the server's clock). A
lease is *live* while it has not expired and its holder's session still holds the session
advisory lock keyed by its token (`live`): so a holder that dies (`kill -9`, a lost connection)
is noticed at once, as the server drops its session's locks, and one that is paused (`SIGSTOP`)
or cut off keeps its session but loses the lease when it expires. Claiming a run whose lease is
not live replaces the row in one statement, with a new, greater token; the old holder's saves
carry the old token and are refused (the store's `_FENCE`), and its renewals find nothing.

Each process renews all the claims it holds on one database in one statement, every third of
the lease length, from one daemon thread (`_Renewer`); claims and renewals go through the
process's main connection, whose session holds the locks.

A claim given up with the run's last save (`RELEASED`, in that save's statement: the store's
`save` with `release`) ends there for everyone: its row is deleted. Its advisory lock, held by the
main connection's session, is unlocked with this process's next statement there (a claim, an
acquire, a renewal: `_on_main`, in the same transaction), so that a tick firing a batch of runs
spends no transaction per run on releases.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psycopg

from wfrun.errors import ClaimLost, StateError, UsageError
from wfrun.model import Run
from wfrun.store.abc import ExecutionClaim
from wfrun.store.postgres._connect import Server
from wfrun.store.postgres._failures import errors

ENV = "WFRUN_LEASE"
DEFAULT_SECONDS = 30.0
MIN_SECONDS = 0.1
BATCH = 32  # runs acquired per transaction by acquire_due


def lease_seconds() -> float:
    """The lease length this process uses: `WFRUN_LEASE` (a duration: `30s`, `2m`, `500ms`),
    30 s by default; UsageError (naming the variable) for a value that is not one."""
    from wfrun.durations import parse_duration

    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError:
        raise UsageError(f"{ENV}={text[:60]!r} is not a lease length: use a duration such as "
                         "30s, 2m or 500ms") from None
    if seconds < MIN_SECONDS:
        raise UsageError(f"{ENV}={text[:60]!r} is too short a lease: use at least 100ms "
                         "(leases are renewed every third of it)")
    return seconds


def live(alias: str) -> str:
    """SQL: the claim row `alias` is a live lease (unexpired, its holder's session alive)."""
    key = f"(%(base)s::bigint # {alias}.token)"
    return (f"({alias}.expires_at > now() AND EXISTS (SELECT 1 FROM pg_locks l "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND l.classid = (({key} >> 32) & 4294967295)::oid "
            f"AND l.objid = ({key} & 4294967295)::oid))")


_EXPIRY = "now() + make_interval(secs => %(lease)s)"
_TAKE = f"""ON CONFLICT (run_id) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token,
        acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
    WHERE NOT {live("c")}
    RETURNING c.run_id, c.token"""
_LOCK = "pg_try_advisory_lock(%(base)s::bigint # t.token)"  # in the claim's own statement
_CLAIM = f"""WITH taken AS (
    INSERT INTO wfrun_claims AS c (run_id, owner, token, acquired_at, expires_at)
    VALUES (%(run_id)s, %(owner)s, nextval('wfrun_claim_tokens'), now(), {_EXPIRY})
    {_TAKE})
    SELECT t.token, {_LOCK} FROM taken t"""
_ACQUIRE = f"""WITH due AS (
    SELECT r.run_id, r.next_due, r.revision, r.run_schema, r.snapshot::text AS snapshot
    FROM wfrun_runs r
    WHERE r.next_due <= %(now)s AND r.run_id <> ALL(%(mine)s::text[])
      AND NOT EXISTS (SELECT 1 FROM wfrun_claims h WHERE h.run_id = r.run_id AND {live("h")})
    ORDER BY r.next_due, r.run_id LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED),
taken AS (
    INSERT INTO wfrun_claims AS c (run_id, owner, token, acquired_at, expires_at)
    SELECT run_id, %(owner)s, nextval('wfrun_claim_tokens'), now(), {_EXPIRY} FROM due
    {_TAKE})
    SELECT d.run_id, t.token, {_LOCK}, d.revision, d.run_schema,
        CASE WHEN t.token IS NOT NULL THEN d.snapshot END
    FROM due d LEFT JOIN taken t ON t.run_id = d.run_id
    ORDER BY d.next_due, d.run_id"""
_RENEW = f"""UPDATE wfrun_claims c SET expires_at = {_EXPIRY}
    FROM unnest(%(runs)s::text[], %(tokens)s::bigint[]) AS m(run_id, token)
    WHERE c.run_id = m.run_id AND c.token = m.token
    RETURNING c.token"""
_HELD = f"SELECT EXISTS (SELECT 1 FROM wfrun_claims c WHERE c.run_id = %(run_id)s AND {live('c')})"
_RELEASE = """WITH gone AS (DELETE FROM wfrun_claims WHERE run_id = %(run_id)s AND token = %(token)s)
    SELECT pg_advisory_unlock(%(base)s::bigint # %(token)s::bigint)"""
_FORGET = "DELETE FROM wfrun_claims WHERE run_id = %(run_id)s AND token = %(token)s"
# A part of a save's statement (after its `changed` part): the claim of token %(token)s ends with
# the save, if the save was made (see `LeaseClaim.ended_with_save`)
RELEASED = """released AS (DELETE FROM wfrun_claims c USING changed
    WHERE c.run_id = changed.run_id AND c.token = %(token)s)"""
_UNLOCK = """SELECT count(pg_advisory_unlock(%(base)s::bigint # u))
    FROM unnest(%(unlock)s::bigint[]) AS u"""
# server -> (main connection's generation, token) of the advisory locks still to unlock
_UNLOCKS: weakref.WeakKeyDictionary[Server, list[tuple[int, int]]] = weakref.WeakKeyDictionary()
# server -> the mutex of its main connection: a pipeline there must not take in another thread's
# statements (psycopg holds the connection's own lock per statement, not for a whole pipeline)
_MAIN: weakref.WeakKeyDictionary[Server, threading.Lock] = weakref.WeakKeyDictionary()
_MAIN_MADE = threading.Lock()


def lost_lease(run_id: str, lease: float) -> str:
    """The message of a save refused because this process's claim on the run was taken over."""
    from datetime import timedelta

    from wfrun.durations import format_duration

    length = format_duration(timedelta(seconds=lease))
    return (f"{ClaimLost.taken_over(run_id)}: this one lost its lease (its connection to the "
            f"database was cut, or it stalled for longer than the lease, {length}), so its "
            f"last change was not saved; the other process goes on with the run, and {ENV} "
            "sets a longer lease if such stalls are expected")


def _owner() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def claim(server: Server, run_id: str) -> LeaseClaim | None:
    """Claim the run unless a live lease of another holder (or this process) exists."""
    with server.claims_mutex:
        if run_id in server.claims:
            return None  # another thread of this process holds it (or is claiming it)
        server.claims[run_id] = 0
    row = None
    try:
        params = {"run_id": run_id, "owner": _owner(), "lease": server.lease,
                  "base": server.key("lease", "")}
        session, rows = _on_main(server, _CLAIM, params)
        row = rows[0] if rows else None
    finally:
        with server.claims_mutex:
            if row is None and server.claims.get(run_id) == 0:
                del server.claims[run_id]
    if row is None:
        return None  # a live lease of another holder
    with server.claims_mutex:
        server.claims[run_id] = row[0]
        server.lost.pop(run_id, None)
    _Renewer.start_for(server)
    return LeaseClaim(server, run_id, row[0], session)


def acquire(server: Server, now: str, limit: int | None,
            parse: Callable[[str, int, int, str], Run | None]) -> list[ExecutionClaim]:
    """Claims of the runs due at `now` with no live lease, in due order, at most `limit`: a
    transaction per `BATCH` runs, whose rows are locked `FOR UPDATE SKIP LOCKED`, so that
    processes acquiring at once take different runs. Each claim carries its run as that
    statement read it (`parse(run_id, revision, run_schema, snapshot)`: None if unreadable).
    Fewer than `limit` only if no more due runs were free.

    The statement finds the due runs as of its start, and locks their rows afterwards: a run
    another process acquired in between (its transaction committed after this statement
    began, so its lease was not seen, and its row lock was gone) is selected, and its lease
    found live only when it is given (`_TAKE`'s `WHERE`). All of a batch can be such runs
    (two workers of one tick acquiring at the same moment), with other due runs free: so
    the statement returns each run it selected, with no token if it was not taken, and is
    made again (its new start sees those leases) until every run it selects is taken."""
    claims: list[ExecutionClaim] = []
    base = server.key("lease", "")
    while limit is None or len(claims) < limit:
        size = BATCH if limit is None else min(BATCH, limit - len(claims))
        with server.claims_mutex:
            mine = list(server.claims)  # held here (or being claimed by another thread)
        params = {"now": now, "mine": mine, "limit": size, "owner": _owner(),
                  "lease": server.lease, "base": base}
        session, rows = _on_main(server, _ACQUIRE, params)
        taken = [row for row in rows if row[1] is not None]
        with server.claims_mutex:
            for run_id, token, *_ in taken:
                server.claims[run_id] = token
                server.lost.pop(run_id, None)
        claims.extend(LeaseClaim(server, run_id, token, session, parse(run_id, *read))
                      for run_id, token, _locked, *read in taken)
        if len(taken) < len(rows):
            continue  # leased by another process since the statement began: select again
        if len(rows) < size:
            break  # no more due runs free (rows being acquired by another process: theirs)
    if claims:
        _Renewer.start_for(server)
    return claims


def is_claimed(server: Server, run_id: str) -> bool:
    """True if the run has a live lease."""
    params = {"run_id": run_id, "base": server.key("lease", "")}
    with errors(server.where, server.names), _main(server):
        row = server.on_main(lambda c: c.execute(_HELD, params).fetchone())
    return bool(row[0])


def renew(server: Server, held: dict[str, int]) -> set[int]:
    """Extend the leases of `held` (run -> token) by the lease length in one statement; the
    tokens renewed. A claim not renewed was lost: it is moved to `server.lost` (its fencing
    token stays known, so its saves are refused, not unfenced)."""
    if server.stopped.is_set() or not (held or _UNLOCKS.get(server)):
        return set()  # (the connections are being closed: not made again for this)
    params = {"runs": list(held), "tokens": list(held.values()), "lease": server.lease,
              "base": server.key("lease", "")}
    _session, rows = _on_main(server, _RENEW, params)
    renewed = {row[0] for row in rows}
    with server.claims_mutex:
        for run_id, token in held.items():
            if token not in renewed and server.claims.get(run_id) == token:
                server.lost[run_id] = server.claims.pop(run_id)
    return renewed


def _main(server: Server) -> threading.Lock:
    """The mutex every use of the server's main connection holds (see `_MAIN`)."""
    with _MAIN_MADE:
        mutex = _MAIN.get(server)
        if mutex is None:
            mutex = _MAIN[server] = threading.Lock()
    return mutex


def _on_main(server: Server, statement: str, params: dict[str, Any]) -> tuple[int, list[Any]]:
    """The rows of `statement` on the main connection, and which connection that was (its
    generation). The advisory locks of claims that ended with a save are unlocked in the same
    transaction (BEGIN, the unlocks, the statement, COMMIT: one round trip, a pipeline)."""
    with _main(server), errors(server.where, server.names):
        with server.claims_mutex:
            pending = _UNLOCKS.pop(server, [])
        return server.on_main(lambda conn: _statement(server, conn, pending, statement, params))


def _statement(server: Server, conn: Any, pending: list[tuple[int, int]], statement: str,
               params: dict[str, Any]) -> tuple[int, list[Any]]:
    """`_on_main`'s work on the connection `conn`."""
    session = server.generation
    tokens = [token for generation, token in pending if generation == session]
    if not tokens:  # (the locks of a session since replaced ended with it)
        return session, conn.execute(statement, params).fetchall()
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute(_UNLOCK, {"base": server.key("lease", ""), "unlock": tokens})
            cursor = conn.execute(statement, params)
            conn.execute("COMMIT")
    except psycopg.Error:
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        with server.claims_mutex:  # unlocked or not, tried again (unlocking a lock that is
            _UNLOCKS.setdefault(server, []).extend(pending)  # not held only returns false)
        raise
    return session, cursor.fetchall()


class LeaseClaim(ExecutionClaim):
    """A lease of one run: its row in wfrun_claims and the advisory lock keyed by its token,
    held by this process's main connection (`session`: which one, `Server.generation`); and
    the run as read when it was taken, if it was (`take_run`)."""

    def __init__(self, server: Server, run_id: str, token: int, session: int,
                 run: Run | None = None) -> None:
        self._server, self._run_id, self._token, self._session = server, run_id, token, session
        self._released = False
        self._run = run

    def take_run(self) -> Run | None:
        run, self._run = self._run, None
        return run

    def of(self, server: Server) -> bool:
        """True if this claim was taken through `server` (in this process)."""
        return self._server is server and os.getpid() == server.pid

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def token(self) -> int:
        return self._token

    @property
    def lost(self) -> bool:
        return not self._released and self._server.claims.get(self._run_id) != self._token

    def renew(self) -> bool:
        if self._released or self.lost or os.getpid() != self._server.pid:
            return False
        try:
            return self._token in renew(self._server, {self._run_id: self._token})
        except StateError:
            return False  # the server cannot be reached: the lease cannot be vouched for

    def ended_with_save(self) -> None:
        """A save that deleted this claim's row (`RELEASED`) committed: the claim is given up.
        Its advisory lock is unlocked with the next statement on the main connection."""
        if self._released:
            return
        self._forget()
        server = self._server
        if os.getpid() == server.pid and server.generation == self._session:
            with server.claims_mutex:
                _UNLOCKS.setdefault(server, []).append((self._session, self._token))

    def _forget(self) -> None:
        """Released: no longer among this process's claims (held or lost)."""
        self._released = True
        server = self._server
        with server.claims_mutex:
            for held in (server.claims, server.lost):
                if held.get(self._run_id) == self._token:
                    del held[self._run_id]

    def release(self) -> None:
        if self._released:
            return
        self._forget()
        server = self._server
        if os.getpid() != server.pid:
            return  # a forked child: the claim is its parent's
        params = {"run_id": self._run_id, "token": self._token, "base": server.key("lease", "")}

        def give_up(conn: Any) -> None:
            # the lock is this session's only if the main connection is the one it was taken on
            live = server.generation == self._session
            conn.execute(_RELEASE if live else _FORGET, params)

        with suppress(psycopg.Error, StateError), _main(server):
            server.on_main(give_up)


class _Renewer:
    """The thread renewing every claim this process holds on one database, every third of the
    lease length; it ends with the process (a daemon) or when the connections are closed."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=self._run, name="wfrun-lease-renewal", daemon=True)

    @classmethod
    def start_for(cls, server: Server) -> None:
        """Start the server's renewal thread unless it runs."""
        with server.claims_mutex:
            if server.renewer is not None or server.stopped.is_set():
                return
            server.renewer = cls(server)
        server.renewer.thread.start()

    def _run(self) -> None:
        server = self.server
        while not server.stopped.wait(server.lease / 3):
            if os.getpid() != server.pid:
                return
            with server.claims_mutex:
                held = {run_id: token for run_id, token in server.claims.items() if token}
                unlocks = bool(_UNLOCKS.get(server))
            if not held and not unlocks:
                continue
            with suppress(StateError, psycopg.Error):  # unreachable: tried again next time
                renew(server, held)
