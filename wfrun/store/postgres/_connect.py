"""One process's connections to one PostgreSQL database, shared by every store object naming it.

Per database URL a process keeps:
- a *main* connection, made directly (so that a server that is down or a wrong URL fails at
  once, with the reason), which checks the schema on first use and holds this process's
  execution claims (leases, each with a session advisory lock that the server releases when
  the process dies: see `_leases`);
- a psycopg pool of autocommit connections for everything else (each state lock is a
  transaction on one of them, held only for the state change);
- once `wait_for_work` is used, a *listener* connection that LISTENs for runs becoming due
  (see `_listen`).

A forked child never touches its parent's connections (it opens its own); they are kept
referenced so that no finalizer of the child closes the parent's sessions.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo, timeout_from_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

import wfrun.store.postgres._schema as _schema
from wfrun.errors import UsageError
from wfrun.store._urls import public_url
from wfrun.store.postgres._failures import (
    POOL_WAIT_SECONDS,
    bad_parameter,
    connect_error,
    errors,
    parameter_error,
    reason_of,
    where_of,
)

T = TypeVar("T")

# The driver's and the pool's own log records ("discarding closed connection: <psycopg.Connection
# [BAD] at 0x...>", "error ignored in rollback ...") would reach stderr through logging's
# last-resort handler; wfrun says what went wrong in its own sentences instead. An application
# that configures logging still gets them.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

POOL_SIZE = 16  # connections per process at most (each lock and each claim-holding thread)
# With no free connection after this long, the server is tried once directly: if it cannot be
# reached the operation fails now (StoreUnavailable), not after POOL_WAIT_SECONDS.
QUICK_WAIT_SECONDS = 2.0
LOCK_TIMEOUT = "30s"  # how long a state lock (or a row lock) is waited for: then "busy"
CONNECT_TIMEOUT = 10  # seconds, unless the URL says connect_timeout=
CHECK_AFTER_IDLE = 1.0  # seconds a pooled connection may idle before it is checked again


class Hold:
    """This thread's hold of one run's state lock: a transaction on one pooled connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.depth = 1
        self.open = False  # a transaction holding the lock is open (a save commits it)
        self.revision: int | None = None  # the run's, read as the lock was taken (see _begin)

    def abort(self) -> None:
        """End the transaction after a failure (the connection may be gone)."""
        if self.open:
            self.open = False
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")


class Server:
    """The connections of this process to one database, and what it holds there."""

    def __init__(self, url: str) -> None:
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise UsageError(f"store URL {public_url(url)!r} is not a valid PostgreSQL URL: "
                             f"{reason_of(exc)}") from None
        if "connect_timeout" in info:  # psycopg reads it itself, before any connection
            try:
                timeout_from_conninfo(info)
            except psycopg.Error as exc:
                raise bad_parameter(url, exc) or parameter_error(url, "connect_timeout",
                                                                 reason_of(exc)) from None
        self.url = url
        self.where = where_of(info)
        options = " ".join(filter(None, [str(info.get("options") or ""),
                                          f"-c lock_timeout={LOCK_TIMEOUT}"]))
        extra: dict[str, Any] = {"options": options}
        if "connect_timeout" not in info:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in info:
            extra["application_name"] = "wfrun"
        self.conninfo = make_conninfo(url, **extra)
        self.pid = os.getpid()
        self.schema = ""  # current_schema(), known once connected
        self.grantee: tuple[str, str] | None = None  # that schema and the user, SQL-quoted
        self.claims: dict[str, int] = {}  # run -> fencing token of the claim this process holds
        self.lost: dict[str, int] = {}  # the same, for claims lost (session gone, or taken over)
        self.claims_mutex = threading.Lock()
        self.lease = 30.0  # seconds a claim's lease lasts unless renewed (the store sets it)
        self.generation = 0  # how many times the main connection was replaced
        self.renewer: Any = None  # the thread renewing this process's leases, once started
        self.listener: Any = None  # the connection LISTENing for work, once used
        self.stopped = threading.Event()  # set by close(): the renewal thread ends
        self._mutex = threading.Lock()
        self._main: Any = None
        self._pool: ConnectionPool[Any] | None = None
        self._local = threading.local()
        self._used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._distrust = 0.0  # when a connection of this process was last found lost

    # -- connecting --------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise connect_error(self.url, self.where, exc) from None

    def dedicated(self) -> Any:
        """A new autocommit connection of its own, neither main nor pooled (StateError if it
        cannot be made); the caller closes it."""
        self.start()
        return self._connect()

    def start(self) -> None:
        """Connect (main connection, schema check, pool) unless done; StateError on failure."""
        if self._pool is not None:
            return
        with self._mutex:
            if self._pool is not None:
                return
            main = self._main or self._connect()
            self._main = main
            pool: ConnectionPool[Any] = ConnectionPool(
                self.conninfo, min_size=1, max_size=POOL_SIZE, open=False, num_workers=1,
                kwargs={"autocommit": True}, check=self._check,
                timeout=POOL_WAIT_SECONDS, name="wfrun")
            pool.open(wait=False)  # its first connection is made while the schema is checked
            try:
                with errors(self.where, self.names):
                    row = main.execute("SELECT current_schema(), quote_ident(current_schema()), "
                                       "quote_ident(current_user)").fetchone()
                    self.schema = row[0] or ""
                    self.grantee = (row[1], row[2]) if row[0] else None
                    _schema.migrate(main, self._key("migrate", ""), self.where)
            except BaseException:
                pool.close(timeout=5)
                raise
            self._pool = pool

    def names(self) -> tuple[str, str] | None:
        """The schema of wfrun's tables and the user, quoted as SQL identifiers (for a GRANT
        to copy), once connected; for `errors`."""
        return self.grantee

    def _check(self, conn: Any) -> None:
        """The pool's check of a connection it hands out: one that was idle for a while may
        have been dropped by the server (a restart, `pg_terminate_backend`, an idle timeout),
        so it is tried with an empty query first (the pool replaces it if that fails); so is
        every one last used before a connection of this process was found lost. One used a
        moment ago is not: a command's operations cost no extra round trip each."""
        used = self._used.get(conn, 0.0)
        if used <= self._distrust or time.monotonic() - used > CHECK_AFTER_IDLE:
            ConnectionPool.check_connection(conn)

    def distrust(self) -> None:
        """A connection was lost: check every pooled one before its next use."""
        self._distrust = time.monotonic()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled autocommit connection for one operation."""
        self.start()
        pool = self._pool
        assert pool is not None
        conn = self._pooled(pool)
        try:
            with conn:
                try:
                    yield conn
                except psycopg.OperationalError:
                    if conn.broken or conn.closed:
                        self.distrust()  # the server may have ended its other sessions too
                    raise
        finally:
            self._used[conn] = time.monotonic()
            pool.putconn(conn)

    def _pooled(self, pool: ConnectionPool[Any]) -> Any:
        """A connection from the pool. When none comes within QUICK_WAIT_SECONDS (all in use,
        or all lost and the pool reconnecting in the background), one connection is made
        directly and closed: StoreUnavailable if the server cannot be reached, so a command or
        an HTTP request hears of an outage in seconds; else the wait goes on (PoolTimeout at
        POOL_WAIT_SECONDS): the pool's size still bounds the connections of this process."""
        try:
            return pool.getconn(timeout=QUICK_WAIT_SECONDS)
        except PoolTimeout:
            self._connect().close()
        return pool.getconn(timeout=POOL_WAIT_SECONDS - QUICK_WAIT_SECONDS)

    def on_main(self, work: Callable[[Any], T]) -> T:
        """Run `work` on the main connection; a connection found broken is replaced once (what
        it held, claims included, is gone with it: their fencing tokens are stale)."""
        self.start()
        for attempt in (1, 2):
            main = self._main
            if main is None or main.closed or main.broken:
                with self._mutex:
                    if self._main is main:
                        self._main = self._connect()
                        self.generation += 1
                        self._claims_lost()
                main = self._main
            try:
                return work(main)
            except psycopg.OperationalError:
                if attempt == 2 or not (main.closed or main.broken):
                    raise
        raise AssertionError("unreachable")

    def _claims_lost(self) -> None:
        """The main connection was replaced: the claims held on it died with its session.
        Their runs may be claimed again; a save by their old holder still carries the old
        fencing token (and is refused once another process claimed the run)."""
        with self.claims_mutex:
            self.lost.update(self.claims)
            self.claims.clear()

    def token(self, run_id: str) -> int | None:
        """The fencing token of this process's claim on the run (or of one it lost), if any."""
        return self.claims.get(run_id) or self.lost.get(run_id)

    def key(self, kind: str, run_id: str) -> int:
        """The advisory lock key of (kind, run) in this schema (locks are per database)."""
        self.start()  # the schema is known once connected
        return self._key(kind, run_id)

    def _key(self, kind: str, run_id: str) -> int:
        digest = hashlib.blake2b(f"wfrun\0{self.schema}\0{kind}\0{run_id}".encode(),
                                 digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    # -- this thread's state locks -------------------------------------------------------------

    def holds(self) -> dict[str, Hold]:
        """The state locks this thread holds, by run."""
        holds: dict[str, Hold] | None = getattr(self._local, "holds", None)
        if holds is None:
            holds = self._local.holds = {}
        return holds

    def close(self) -> None:
        """Close this process's connections to the database (claims held are released)."""
        self.stopped.set()
        with self._mutex:
            pool, main, listener = self._pool, self._main, self.listener
            self._pool = self._main = self.listener = None
        with self.claims_mutex:
            self.claims.clear()
            self.lost.clear()
        if pool is not None:
            pool.close(timeout=1)
        if main is not None:
            main.close()
        if listener is not None:
            listener.close()


_SERVERS: dict[str, Server] = {}
_PID = os.getpid()
_ABANDONED: list[Server] = []  # a parent's, seen from a forked child: never used nor finalized
_REGISTRY = threading.Lock()


def server(url: str) -> Server:
    """This process's connections to the database `url` names."""
    if os.getpid() != _PID:
        forget_inherited()
    found = _SERVERS.get(url)
    if found is None:
        with _REGISTRY:
            found = _SERVERS.get(url)
            if found is None:
                found = _SERVERS[url] = Server(url)
    return found


def forget_inherited() -> None:
    """In a forked child: drop the parent's connections without closing them (closing would
    end the parent's sessions and release its claims). Their sockets are pointed at /dev/null
    in this process, so that not even a finalizer at exit can write to the parent's sessions."""
    global _PID, _REGISTRY
    if os.getpid() == _PID:
        return
    _REGISTRY = threading.Lock()  # another thread of the parent may have held it
    for inherited in _SERVERS.values():
        _detach(inherited)
    _ABANDONED.extend(_SERVERS.values())
    _SERVERS.clear()
    _PID = os.getpid()


def _detach(inherited: Server) -> None:
    idle = list(getattr(inherited._pool, "_pool", ()))  # the pool's idle connections
    held = [h.conn for h in inherited.holds().values()]
    listener = getattr(inherited.listener, "conn", None)
    conns = [c for c in [inherited._main, listener, *idle, *held] if c is not None]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in conns:
            with suppress(OSError, psycopg.Error):
                os.dup2(null, conn.pgconn.socket)
    finally:
        os.close(null)


def close(url: str) -> None:
    """Close this process's connections to the database `url` names, if any."""
    found = _SERVERS.pop(url, None) if os.getpid() == _PID else None
    if found is not None:
        found.close()


@atexit.register
def _close_all() -> None:
    if os.getpid() != _PID:
        return
    for url in list(_SERVERS):
        with suppress(Exception):  # exiting: the server ends the sessions anyway
            close(url)


if hasattr(os, "register_at_fork"):  # a forked child (tick --workers) opens its own connections
    os.register_at_fork(after_in_child=forget_inherited)
