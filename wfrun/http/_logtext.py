"""Text the server logs, made safe for a terminal: what a client sent (its request line, a
path, a name) may hold control characters, which are escaped as Python 3.12's http.server
escapes them, so a request cannot recolour, rewrite or ring a log reader's terminal."""

from __future__ import annotations

import itertools

# C0 controls, DEL and C1 controls as `\xNN`, and the backslash doubled (so `\x1b` sent as
# four characters stays distinct from an escaped ESC)
_ESCAPES = {c: f"\\x{c:02x}" for c in itertools.chain(range(0x20), range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"
_TABLE = str.maketrans(_ESCAPES)


def printable(text: str) -> str:
    """`text` with its control characters escaped as `\\xNN` (and `\\` as `\\\\`)."""
    return text.translate(_TABLE)
