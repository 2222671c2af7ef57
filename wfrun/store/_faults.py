"""Fault injection for the file store's file operations.

Every file operation the file store makes that a crash or a full disk could interrupt calls
`fault_point` first, so a test can make the N-th operation kill the process or fail with
ENOSPC/EIO by setting `WFRUN_FAULT=kill@N`, `enospc@N` or `eio@N` (operations counted: write,
fsync, link, replace, dirsync). Without the variable it costs one integer increment.
"""

from __future__ import annotations

import errno
import os

_FAULT_KIND = ""
_FAULT_AT = 0
_fault_spec = os.environ.get("WFRUN_FAULT", "")
if "@" in _fault_spec:
    _kind, _, _at = _fault_spec.partition("@")
    if _kind in ("kill", "enospc", "eio") and _at.isdigit():
        _FAULT_KIND, _FAULT_AT = _kind, int(_at)
_op_count = 0


def fault_point(name: str) -> None:
    """Count one file operation and inject the configured fault when its turn comes."""
    global _op_count
    _op_count += 1
    if _FAULT_AT and _op_count == _FAULT_AT:
        if _FAULT_KIND == "kill":
            os._exit(137)
        code = errno.ENOSPC if _FAULT_KIND == "enospc" else errno.EIO
        raise OSError(code, f"{os.strerror(code)} (injected at {name} #{_op_count})")
