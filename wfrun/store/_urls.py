"""Store URLs: `file:PATH` (or a bare path) and `postgresql://...`, parsed and made safe to
show (no password); nothing here opens a store."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from wfrun.errors import UsageError

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEME_ONLY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")  # `memory:`, `sqlite:x`: no path
_USERINFO = re.compile(r"([^@/]*)@")
# libpq parameters whose value is a secret, left out wherever a URL is shown (`passfile`,
# `sslkey` and the like name a file, and are shown)
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret"})


def store_kind(url: str) -> tuple[str, str]:
    """`("file", PATH)` or `("postgresql", URL)` for a store URL; UsageError for anything else
    (an empty URL, or a scheme wfrun has no store for)."""
    if not url:
        raise UsageError("the store URL is empty; use file:PATH or postgresql://USER@HOST/DB")
    if url.startswith("file:"):
        path = url[len("file:"):]
        if path.startswith("//"):  # file:///abs/path, file://localhost/abs/path
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise UsageError(f"store URL {url!r} names another host; a file store is a local "
                                 "directory: use file:/path/to/dir")
            path = parts.path
        if not path:
            raise UsageError(f"store URL {url!r} names no directory; use file:PATH")
        return "file", path
    scheme = _SCHEME.match(url)
    if scheme is None:
        named = _SCHEME_ONLY.match(url)
        if named is not None and named.group(1).lower() == "memory":
            raise UsageError("the memory store lives in one process (tests build it with "
                             "wfrun.store.memory.MemoryStore); a command needs file:PATH or "
                             "postgresql://USER@HOST:PORT/DB")
        if named is not None:
            raise UsageError(f"store URL {public_url(url)[:100]!r} has scheme {named.group(1)!r}, which "
                             "wfrun has no store for; use file:PATH (for a directory whose name "
                             "has a colon, file:./NAME) or postgresql://USER@HOST:PORT/DB")
        return "file", url  # a bare path
    if scheme.group(1).lower() in POSTGRES_SCHEMES:
        return "postgresql", url
    raise UsageError(f"store URL {public_url(url)!r} has scheme {scheme.group(1)!r}, which wfrun "
                     "has no store for; use file:PATH or postgresql://USER@HOST:PORT/DB")


def public_url(url: str) -> str:
    """The URL without its password (for messages and printed commands: the password belongs
    in PGPASSWORD or ~/.pgpass, not in a terminal's scrollback)."""
    scheme = _SCHEME.match(url) or _SCHEME_ONLY.match(url)
    if scheme is None or scheme.group(1).lower() == "file":
        return url  # a path
    # read as libpq reads it: the user information runs to an `@` before any `/` (a password
    # may hold `?`, `#` or `:`), and parameters follow the first `?` after it
    head, rest = url[:scheme.end()], url[scheme.end():]
    userinfo = _USERINFO.match(rest) if head.endswith("://") else None
    if userinfo is not None:
        user = userinfo.group(1).partition(":")[0]
        head += f"{user}@" if user else ""
        rest = rest[userinfo.end():]
    address, question, query = rest.partition("?")
    if question:
        kept = [item for item in query.split("&")
                if unquote(item.partition("=")[0]).strip() not in SECRET_PARAMETERS]
        rest = f"{address}?{'&'.join(kept)}" if kept else address
    return head + rest
