"""Bearer tokens that start runs over HTTP (`wfrun token`, `POST /workflows/W/runs`).

A token is 256 random bits, URL-safe, shown once when it is made. The store keeps only its
SHA-256 hash with its name, workflow, creation time and revoked flag. A plain hash is enough
(no slow password hash such as scrypt or argon2): those slow down guessing a password that has
little entropy, while a token is random and has 256 bits, so trying every token against a
stolen hash is out of reach however fast one hash is; and a hash that is the same for each
token is what lets a request's token be found among the stored ones.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.ids import random_token

if TYPE_CHECKING:
    from wfrun.store.abc import Store

PREFIX = "wfr_"  # lets secret scanners (and people) recognise a wfrun token
TOKEN_BYTES = 32  # 256 bits
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# What a bearer token may look like on the wire (RFC 6750's token68, bounded): anything else
# is a malformed Authorization header, whatever its value.
WIRE_PATTERN = re.compile(r"[A-Za-z0-9._~+/-]{1,256}=*")
NAME_ATTEMPTS = 10


def new_token() -> str:
    """A new random token: `wfr_` and 43 URL-safe characters (256 bits)."""
    return PREFIX + random_token(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps of a token: `sha256:` and the hex digest of its UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    """Return `name` if it can name a token, else raise UsageError."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"invalid token name {name[:80]!r}: use 1 to 64 letters, digits, '.', "
                         "'-' or '_', starting with a letter or digit")
    return name


def _free_name(store: Store, workflow: str) -> str:
    """`WORKFLOW-N` for the smallest N above every number used so far (revoked tokens too)."""
    stem = workflow[:50]
    used = [r["name"] for r in store.tokens()]
    numbers = [int(n[len(stem) + 1:]) for n in used
               if n.startswith(stem + "-") and n[len(stem) + 1:].isdigit()]
    return f"{stem}-{max(numbers, default=0) + 1}"


def create(store: Store, workflow: str, name: str | None, now: str) -> tuple[str, dict[str, Any]]:
    """Make a token for `workflow`, store its record and return (token, record).

    A given `name` that is taken raises ConflictError; without one, `WORKFLOW-N` is chosen."""
    if name is not None:
        check_name(name)
    for _ in range(NAME_ATTEMPTS):
        token = new_token()
        record = {"name": name or _free_name(store, workflow), "workflow": workflow,
                  "hash": token_hash(token), "created_at": now, "revoked": False,
                  "revoked_at": None}
        try:
            store.save_token(record)
        except ConflictError:
            if name is not None:
                raise ConflictError(f"a token named {name!r} exists already; choose another "
                                    "--name ('wfrun token list' shows them)") from None
            continue  # another process took the generated name meanwhile
        return token, record
    raise ConflictError("could not choose a free token name; give one with --name")


def revoke(store: Store, name: str, now: str) -> tuple[dict[str, Any], bool]:
    """Revoke the token named `name`: (its record, True if this call revoked it). NotFoundError
    if there is no such token."""
    check_name(name)
    record = store.revoke_token(name, now)
    if record is None:
        raise NotFoundError(f"no token named {name!r}; 'wfrun token list' shows them")
    return record, record["revoked_at"] == now


def authorizes(store: Store, token: str, workflow: str) -> bool:
    """True if `token` is a stored, unrevoked token of `workflow`.

    Costs the same whatever the answer: the store compares the token's hash with every stored
    hash in constant time, and what follows compares in constant time too, so a revoked token,
    a token of another workflow and a random one cannot be told apart by timing."""
    record = store.find_token(token_hash(token))
    scope = record["workflow"] if record is not None else ""
    same = hmac.compare_digest(scope.encode("utf-8", "surrogatepass"),
                               workflow.encode("utf-8", "surrogatepass"))
    return record is not None and same and not record["revoked"]


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A token record as `wfrun token list --json` shows it (never the token or its hash)."""
    return {"name": record["name"], "workflow": record["workflow"],
            "created_at": record["created_at"], "revoked": record["revoked"],
            "revoked_at": record.get("revoked_at")}
