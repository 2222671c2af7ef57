"""What failures of PostgreSQL and its driver are, in wfrun's words: which store a message
names (`where_of`), the server's reason in a few words, a URL parameter refused before the
server was tried (a usage error), a failure to connect (refused for good, or an outage), a
connection lost under an operation, and the driver's other errors (`errors`)."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg_pool import PoolTimeout

from wfrun.errors import StateError, StoreUnavailable, UsageError, WfrunError
from wfrun.store._urls import public_url

POOL_WAIT_SECONDS = 30.0  # how long an operation waits for a free pooled connection
# What the server says when it refuses a connection for a reason that trying again will not
# mend (the URL, the login or the server's configuration): any other failure to connect is
# an outage (StoreUnavailable). libpq gives no SQLSTATE for a failed connection.
_REFUSED_FOR_GOOD = ("does not exist", "authentication failed", "no pg_hba.conf entry",
                     "no password supplied")
# How psycopg and libpq refuse the value of a connection parameter, before the server is asked
# (the group names the parameter): a usage error when the URL's query gives that parameter
_BAD_PARAMETER = re.compile(
    r'bad value for (?P<a>\w+): |invalid integer value "[^"]*" for connection option "(?P<b>\w+)"'
    r'|invalid (?P<c>\w+) value: |invalid connection option "(?P<d>\w+)"'
    r'|invalid (?P<e>port) number: ')

# How the server refuses a statement on a table or sequence the user has no privilege on
# ("relation" before PostgreSQL 11)
_DENIED = re.compile(r"permission denied for (?P<kind>table|relation|sequence) (?P<name>\S+)")


def where_of(info: dict[str, Any]) -> str:
    """`database 'DB' on HOST:PORT` for messages (the password never appears), with what
    libpq uses for what the URL leaves out: PG* variables, the local socket, the OS user."""
    env = os.environ
    host = str(info.get("host") or info.get("hostaddr") or env.get("PGHOST") or "")
    port = str(info.get("port") or env.get("PGPORT") or "5432")
    user = info.get("user") or env.get("PGUSER") or getpass.getuser()
    db = info.get("dbname") or env.get("PGDATABASE") or user
    if not host or host.startswith("/"):
        return f"database {db!r} on the local socket {host or '(default)'} port {port}"
    return f"database {db!r} on {host}:{port}"


def reason_of(exc: BaseException) -> str:
    """The server's or libpq's reason, in a few words (first line, without prefixes)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.rpartition(" failed: ")[2] if " failed: " in text else text
    for prefix in ("connection failed: ", "connection is bad: ", "FATAL:  ", "ERROR:  "):
        text = text.removeprefix(prefix)
    if "pipeline mode" in text:  # libpq's words for a connection cut with a pipeline in flight
        return "the connection was cut while a transaction was in flight"
    return text.rstrip(".")


def bad_parameter(url: str, exc: BaseException) -> UsageError | None:
    """The usage error of a parameter in the URL (`?connect_timeout=x`, `?sslmode=bogus`, a
    port `:x` after the host) whose value psycopg or libpq refused before trying the server;
    None for any other failure to connect (the address in the URL is tried: a failure to
    connect)."""
    text = " ".join(str(exc).split())
    found = _BAD_PARAMETER.search(text)
    if found is None:
        return None
    name = next(value for value in found.groups() if value)
    given = {key.lower() for key in _given_keys(url)}
    if name.lower() not in given:
        return None
    return parameter_error(url, name, text[found.start():])


def parameter_error(url: str, name: str, reason: str) -> UsageError:
    """The usage error of the URL's parameter `name` (`reason`: psycopg's or libpq's words,
    which name it and its value)."""
    if name not in reason:
        reason = f"{name}: {reason}"
    return UsageError(f"store URL {public_url(url)!r} has a bad parameter: {reason.rstrip('.')}"
                      "; correct it in --store or WFRUN_STORE")


def _given_keys(url: str) -> list[str]:
    """The parameters the URL itself gives: in its query, and those its address spells (a port
    after the host, the user, the database); not those libpq takes from PG* variables."""
    try:
        keys = list(psycopg.conninfo.conninfo_to_dict(url))
    except psycopg.Error:
        keys = []
    try:
        return keys + [key for key, _value in parse_qsl(urlsplit(url).query,
                                                         keep_blank_values=True)]
    except ValueError:
        return keys


def connect_error(url: str, where: str, exc: psycopg.Error) -> WfrunError:
    """What a failure to connect is: a usage error for a bad parameter in the URL (exit 2),
    StateError if the server refused for a reason trying again will not mend (no such database,
    a login refused), else StoreUnavailable (an outage); one sentence naming the database."""
    bad = bad_parameter(url, exc)
    if bad is not None:
        return bad
    reason = reason_of(exc)
    error = StateError if any(words in reason for words in _REFUSED_FOR_GOOD) \
        else StoreUnavailable
    return error(f"cannot connect to PostgreSQL {where}: {reason}; check that the server is "
                 "running and the store URL")


class ConnectionLost(StoreUnavailable):
    """The connection under an operation was lost. `applied` is False when the server said the
    statement was not carried out (it ended the session first: a restart, an administrator),
    True when it may have been (the connection broke while it ran)."""

    def __init__(self, message: str, applied: bool) -> None:
        super().__init__(message)
        self.applied = applied


# SQLSTATEs that say the session ended before the statement could take effect
_NOT_APPLIED = frozenset({"57P01", "57P02", "57P03", "08001", "08004"})


def lost(exc: psycopg.OperationalError) -> bool:
    """True if the error is the connection's, not the statement's (a lock timeout is not)."""
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _NOT_APPLIED


def denied(exc: psycopg.Error, where: str, schema: str, user: str) -> StateError | None:
    """The error of a statement refused for want of a privilege on a table or sequence of
    wfrun's (made by another user, who granted this one none), naming it and the GRANTs that
    give `user` what wfrun needs in `schema` (both quoted); None for another refusal."""
    found = _DENIED.search(reason_of(exc))
    if found is None:
        return None
    kind = "sequence" if found["kind"] == "sequence" else "table"
    return StateError(
        f"user {user} may not use {kind} {found['name']} in schema {schema} of {where}, where "
        "wfrun's tables are kept (another user made them and has not granted it what wfrun "
        "needs); "
        f"grant them (GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO "
        f"{user}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {user}), or run wfrun as "
        "the user who made them")


@contextmanager
def errors(where: str, names: Callable[[], tuple[str, str] | None] | None = None
           ) -> Iterator[None]:
    """Turn the driver's errors into one sentence naming the database (StateError, exit 5).
    `names` gives the schema of wfrun's tables and the user, quoted (None: not connected yet),
    for the GRANT a statement refused for want of a privilege needs."""
    try:
        yield
    except PoolTimeout:
        raise StoreUnavailable(f"no connection to PostgreSQL {where} came free within "
                               f"{POOL_WAIT_SECONDS:.0f}s; the server may be overloaded or "
                               "unreachable") from None
    except psycopg.OperationalError as exc:
        message = f"the connection to PostgreSQL {where} failed: {reason_of(exc)}; try again"
        if lost(exc):
            raise ConnectionLost(message, applied=exc.sqlstate not in _NOT_APPLIED) from None
        raise StateError(message) from None
    except psycopg.Error as exc:
        known = names() if names is not None else None
        if isinstance(exc, psycopg.errors.InsufficientPrivilege) and known is not None:
            refused = denied(exc, where, *known)
            if refused is not None:
                raise refused from None
        raise StateError(f"PostgreSQL {where} refused a query: {reason_of(exc)}") from None
