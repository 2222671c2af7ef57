"""The modules a workflow's step module imports from its own directory (`import helpers`), kept
track of so that a long-lived process (`tick --watch`, `serve`, a pytest run) runs their
current code: Python keeps an imported module for the life of the process, so a helper edited
after its first import, or one of the same name in another project's directory, would
otherwise go on being used."""

from __future__ import annotations

import os
import sys

Signature = tuple[int, int, int] | None  # (mtime_ns, size, inode) of a file; None if missing

# step module key (`loader`: path and code hash) -> its directory and, for each module loaded
# from that directory when it was imported, (module name, file, signature)
_seen: dict[str, tuple[str, list[tuple[str, str, Signature]]]] = {}


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def unchanged(key: str) -> bool:
    """True if no module the step module `key` found beside it has changed since (a stat of
    each: most step modules import none)."""
    seen = _seen.get(key)
    return seen is None or all(_signature(path) == sig for _, path, sig in seen[1])


def forget(directory: str) -> None:
    """Before a step module in `directory` is imported: drop from `sys.modules` what an earlier
    one found beside it if its file changed since, or if it came from another directory (a
    module of the same name there would shadow this directory's), so the import finds the
    current file."""
    for seen_in, modules in list(_seen.values()):
        for name, path, sig in modules:
            if seen_in != directory or _signature(path) != sig:
                sys.modules.pop(name, None)


def remember(key: str, directory: str, own: str, before: set[str]) -> None:
    """After the step module `key` (in `directory`, imported as `own`) ran: note the modules
    loaded from that directory (or below it), with their files' signatures: those its import
    loaded (not in `before`) and those an earlier step module there found already."""
    inside = os.path.join(directory, "")
    names = {name for name in sys.modules.keys() - before if name != own}
    names.update(name for seen_in, modules in _seen.values() if seen_in == directory
                 for name, _, _ in modules if name in sys.modules)
    found = []
    for name in sorted(names):
        path = getattr(sys.modules[name], "__file__", None)
        if isinstance(path, str) and path.startswith(inside):
            found.append((name, path, _signature(path)))
    _seen[key] = (directory, found)
