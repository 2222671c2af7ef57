"""Text the server logs, made safe: tokens in it are hidden (`redact`), and what a client sent
(its request line, a path, a name) may hold control characters, which are escaped as Python
3.12's http.server escapes them, so a request cannot recolour, rewrite or ring a log reader's
terminal (`printable`)."""

from __future__ import annotations

import itertools
import re
from urllib.parse import unquote_plus

# C0 controls, DEL and C1 controls as `\xNN`, and the backslash doubled (so `\x1b` sent as
# four characters stays distinct from an escaped ESC)
_ESCAPES = {c: f"\\x{c:02x}" for c in itertools.chain(range(0x20), range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"
_TABLE = str.maketrans(_ESCAPES)


def printable(text: str) -> str:
    """`text` with its control characters escaped as `\\xNN` (and `\\` as `\\\\`)."""
    return text.translate(_TABLE)


_PARAMETER = re.compile(r"([^=&\s\"?/]+)=([^&\s\"]*)")


def redact(text: str) -> str:
    """Hide tokens in text that is logged: the value of every parameter whose name is `token`
    once percent-decoded, as the server reads it (`%74oken=` is a token too)."""
    def hide(found: re.Match[str]) -> str:
        name = found.group(1)
        return f"{name}=..." if name == "token" or unquote_plus(name) == "token" else found[0]

    return _PARAMETER.sub(hide, text)
