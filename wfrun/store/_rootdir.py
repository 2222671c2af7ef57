"""The file store's own directory, checked before it is used: a directory of this user's that
others cannot write to, and a state directory (or an empty one), never a directory of other
files that a mistyped --state-dir names."""

from __future__ import annotations

import os
import stat

from wfrun.errors import StateError


def check_root(root: str, own: set[str]) -> None:
    """Refuse `root` unless it is a directory of this user that others cannot write to; a
    readable one (0755) is tightened to 0700 if it holds wfrun's state (`own`: the names
    wfrun makes in it) or nothing."""
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {root} is not a directory; point --state-dir (or "
                         "--store file:PATH) at a directory")
    if st.st_uid != os.getuid():
        raise StateError(f"state directory {root} is owned by another user (uid {st.st_uid}); "
                         "use a directory of your own (--state-dir)")
    if st.st_mode & 0o022:
        raise StateError(f"state directory {root} is writable by group or others (mode "
                         f"{st.st_mode & 0o777:o}); run 'chmod 700 {root}'")
    if st.st_mode & 0o777 != 0o700:
        check_ours(root, own)
        os.chmod(root, 0o700)


def check_ours(root: str, own: set[str]) -> None:
    """Refuse a directory that holds other things and none of `own` (a mistyped --state-dir
    such as `..` or `/`): wfrun makes its subdirectories and tightens the mode only of an
    empty directory or a state directory."""
    with os.scandir(root) as entries:
        names = {entry.name for entry in entries}
    if names and not names & own:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise StateError(f"{root} is not a wfrun state directory: it holds other files "
                         f"({shown}) and no runs/; point --state-dir (or --store file:PATH) at "
                         "a new or empty directory")
