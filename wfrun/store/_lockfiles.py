"""What to say when a lock file of the file store cannot be opened: `locks/RUN.lock` (a run's
state lock), `locks/RUN.exec` (its execution claim) or `keys/tokens.lock`.

Only ever called from the except clause around the open that failed (the open is on every
step's path: nothing is checked before it). Its users import it up front all the same: out of
file descriptors (EMFILE), importing it then would fail too."""

from __future__ import annotations

import errno
import os
import stat

from wfrun.errors import StateError

TOO_MANY_FILES = (errno.EMFILE, errno.ENFILE)


def _user() -> str:
    """The name of the user this process runs as (its uid if it has no name)."""
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OSError):  # (OSError: /etc/passwd could not be opened either)
        return str(uid)


def open_error(path: str, exc: OSError, what: str) -> StateError:
    """The StateError for `path`, `what` (e.g. "the state lock of run r1"), that could not be
    opened (or created) for reading and writing: the file, what is wrong and what to do."""
    reason = exc.strerror or str(exc)
    return StateError(f"cannot open {path} ({what}): {reason}; {advice(path, exc.errno)}")


def advice(path: str, code: int | None) -> str:
    """What to do about a lock file `path` that fails to open with `code` (an errno)."""
    directory = os.path.dirname(path)
    if code in TOO_MANY_FILES:
        who = "this process" if code == errno.EMFILE else "the system"
        return (f"{who} has too many files open: raise the limit (ulimit -n, or LimitNOFILE= "
                "in a systemd unit) or run fewer tick workers, then try again")
    if code == errno.EROFS:
        return (f"the file system holding {directory} is mounted read-only: remount it "
                "read-write, then try again")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space (or inodes), then try again"
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else \
            "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        remove = "rm -r" if stat.S_ISDIR(st.st_mode) else "rm"
        return (f"it is {kind}, not the empty file wfrun keeps there: remove it "
                f"('{remove} {path}'; wfrun makes the file again)")
    user = _user()
    if code in (errno.EACCES, errno.EPERM):
        if st is None:  # creating it failed: the directory refuses
            return (f"the user running wfrun ({user}) must be able to create files in "
                    f"{directory}: run 'chown {user} {directory}' and 'chmod 700 {directory}'")
        immutable = f", and 'chattr -i {path}' if it is immutable" \
            if code == errno.EPERM else ""
        return (f"it must be a file the user running wfrun ({user}) can read and write: run "
                f"'chown {user} {path}' and 'chmod 600 {path}'{immutable}")
    return f"check {path} and {directory} (owner {user}, modes 600 and 700), then try again"
