"""Waiting for work on PostgreSQL: LISTEN/NOTIFY, and the earliest due time as a timer.

A trigger on `wfrun_runs` (schema migration 3) calls `pg_notify('wfrun_work', 'SCHEMA.RUN')` in
the transaction of every insert of a run with a due time and every change of a run's due time
(a new run, a resume, an event, a cancel, a run that paused until later): the notification is
sent when, and only if, that transaction commits. Each process LISTENs on one connection of its
own (made on its first wait, kept until its connections are closed) and wakes its waiters when a
notification of its schema arrives. A wait also ends at the earliest future due time in the
table, and when a lease on a due run runs out (its holder may be gone), so that neither waits
for a polling interval; it does not begin while a due run's holder is known to be gone (its
lease left behind is no longer live): that run is to be recovered now.
"""

from __future__ import annotations

import select
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import psycopg

from wfrun.errors import StateError
from wfrun.store.postgres._connect import Server
from wfrun.store.postgres._leases import live

CHANNEL = "wfrun_work"
POLL = 0.2  # seconds: `stop` is checked at least this often
_MARGIN = 0.005  # seconds past a due time or an expiry before waking (it has passed by then)

_NEXT = f"""SELECT
    extract(epoch FROM (SELECT min(next_due) FROM wfrun_runs WHERE next_due > %(now)s)
                        - %(now)s::timestamptz),
    extract(epoch FROM (SELECT min(c.expires_at) FROM wfrun_claims c
                        JOIN wfrun_runs r ON r.run_id = c.run_id
                        WHERE r.next_due <= %(now)s AND c.expires_at > now()) - now()),
    CASE WHEN EXISTS (SELECT 1 FROM wfrun_claims c JOIN wfrun_runs r ON r.run_id = c.run_id
                      WHERE r.next_due <= %(now)s AND c.token <> ALL(%(mine)s::bigint[])
                        AND NOT {live("c")}) THEN 0 END"""


class Listener:
    """One connection LISTENing on `wfrun_work`, counting the notifications of its schema."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = server.dedicated()
        self.heard = 0  # notifications of this schema heard so far
        self.mutex = threading.Lock()  # one thread at a time uses the connection
        self.seen = threading.local()  # per waiting thread: `heard` when it last returned
        self.conn.add_notify_handler(self._heard)  # those that arrive during a query
        self.conn.execute(f"LISTEN {CHANNEL}")
        self.poller = select.poll()  # (not select(): a descriptor may be above FD_SETSIZE)
        self.poller.register(self.conn.pgconn.socket, select.POLLIN)

    def _heard(self, notify: Any) -> None:
        self._count(notify.channel, notify.payload)

    def _count(self, channel: str, payload: str) -> None:
        if channel == CHANNEL and payload.rpartition(".")[0] == self.server.schema:
            self.heard += 1

    def _read(self, seconds: float) -> None:
        """Wait up to `seconds` for the server to send something; count what it sent."""
        pgconn = self.conn.pgconn
        if self.poller.poll(max(int(seconds * 1000), 0)):
            pgconn.consume_input()
            if pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("the listening connection was closed")
        while (notify := pgconn.notifies()) is not None:
            self._count(notify.relname.decode(), notify.extra.decode("utf-8", "replace"))

    def news(self) -> bool:
        """True if something was heard since this thread's last wait ended."""
        return self.heard > getattr(self.seen, "count", 0)

    def done(self) -> None:
        """This thread's wait ends: what was heard until now is what its caller looks at."""
        self.seen.count = self.heard

    def wake_in(self) -> float | None:
        """Seconds until the earliest future due time, or the earliest expiry of a lease on a
        run due now; 0 if a run due now has a lease that is no longer live (its holder died,
        or stalled past its expiry: the run is to be recovered); None if there is none."""
        server = self.server
        with server.claims_mutex:
            mine = [token for token in server.claims.values() if token]
        params = {"now": datetime.now(UTC), "mine": mine, "base": server.key("lease", "")}
        with self.mutex:
            row = self.conn.execute(_NEXT, params).fetchone()
        found = [float(v) for v in row if v is not None]
        return min(found) + _MARGIN if found else None

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` (at most `POLL`) for a notification; True if one came."""
        if self.news():
            return True
        if self.mutex.acquire(timeout=seconds):
            try:
                self._read(min(seconds, POLL))
            finally:
                self.mutex.release()
        return self.news()

    def close(self) -> None:
        """Close the connection (its LISTEN ends with it)."""
        with suppress(psycopg.Error, OSError):
            self.conn.close()


def listener(server: Server) -> Listener:
    """The process's listener on this database, made (and LISTENing) on first use."""
    with server.claims_mutex:
        found: Listener | None = server.listener
    if found is None:
        made = Listener(server)
        with server.claims_mutex:
            found = server.listener
            if found is None:
                found = server.listener = made
        if found is not made:
            made.close()  # another thread made one meanwhile
    return found


def wait_for_work(server: Server, timeout: float, stop: threading.Event) -> None:
    """Return when a notification of this schema arrives, at the earliest future due time (or
    lease expiry of a due run), when `stop` is set (checked every `POLL` seconds) or after
    `timeout` seconds; without a listening connection (the server cannot be reached), wait
    for `stop` or the timeout."""
    end = time.monotonic() + max(timeout, 0.0)
    try:
        heard = listener(server)
        try:
            wake = heard.wake_in()  # (what was committed during the tick is read meanwhile)
            if wake is not None:
                end = min(end, time.monotonic() + wake)
            while not stop.is_set():
                left = end - time.monotonic()
                if left <= 0 or heard.wait(left):
                    return
        finally:
            heard.done()
    except (psycopg.Error, OSError, StateError):
        _forget(server)  # made again by the next wait; polling goes on meanwhile
        stop.wait(max(end - time.monotonic(), 0.0))


def _forget(server: Server) -> None:
    with server.claims_mutex:
        gone: Listener | None = server.listener
        server.listener = None
    if gone is not None:
        gone.close()
