"""Run ids: generated ones are time-sortable and URL- and file-safe; given ones are checked."""

from __future__ import annotations

import base64
import os
import re
from datetime import datetime

from wfrun.errors import UsageError

# Not starting with "-": every command wfrun prints names the run as an argument, where "-x"
# would read as an option.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


_CHECKED: set[str] = set()  # ids found valid lately (a step checks its run's id several times)


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is 1 to 64 of `[A-Za-z0-9_-]`, not starting with '-'; raise
    UsageError otherwise."""
    if type(run_id) is str and run_id in _CHECKED:
        return run_id
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        shown = repr(run_id)[:80]
        raise UsageError(
            f"invalid run id {shown}: use 1 to 64 letters, digits, '-' or '_', "
            "not starting with '-'"
        )
    if type(run_id) is str:
        if len(_CHECKED) >= 1024:
            _CHECKED.clear()
        _CHECKED.add(run_id)
    return run_id


def new_run_id(now: datetime) -> str:
    """A ULID-like id: 10 characters of milliseconds since the epoch, then 16 random ones."""
    millis = int(now.timestamp() * 1000)
    stamp = _encode(millis, 10)
    rand = _encode(int.from_bytes(os.urandom(10)), 16)
    return stamp + rand


def random_token(nbytes: int = 9) -> str:
    """A URL-safe random string from the OS's CSPRNG (like secrets.token_urlsafe, cheaper to import)."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode().rstrip("=")


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
