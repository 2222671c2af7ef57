"""The global options of one invocation (store, state and workflows directories), resolved once."""

from __future__ import annotations

import shlex
from typing import Any

from wfrun.errors import TAKEN_OVER, UsageError

DEFAULT_STATE_DIR, DEFAULT_WORKFLOWS_DIR = ".wfstate", "workflows"


class Settings:
    """Global options, resolved once per process."""

    def __init__(self, state_dir: str, workflows_dir: str, explicit_state_dir: bool,
                 store: str | None = None) -> None:
        self.state_dir = state_dir
        self.workflows_dir = workflows_dir
        self.explicit_state_dir = explicit_state_dir
        self.store = store  # --store (WFRUN_STORE) as given
        self._kind, self._dir = "file", state_dir
        if store is not None:
            from wfrun.store import public_url, store_kind

            try:
                self._kind, where = store_kind(store)
            except UsageError:
                return  # said by store_url(), inside the command
            # what messages name (doctor, a missing directory): the path, or the URL
            self.state_dir = where if self._kind == "file" else public_url(store)

    def store_url(self) -> str:
        """The store in force: --store (WFRUN_STORE), else the state directory. UsageError for
        an unusable URL, or when --store and --state-dir name different stores."""
        if self.store is None:
            return self.state_dir
        from wfrun.store import public_url, store_kind

        kind, where = store_kind(self.store)
        if self.explicit_state_dir and (kind != "file" or not _same_path(where, self._dir)):
            raise UsageError(f"--store and --state-dir (or WFRUN_STORE and WFRUN_STATE_DIR) name "
                             f"different stores ({public_url(self.store)!r} and directory "
                             f"{self._dir!r}); give only one")
        return self.store

    def engine(self, now: str | None = None) -> Any:
        """Build the engine over the store in force; `now` fixes the clock (tick --now)."""
        from wfrun.clock import FakeClock, SystemClock
        from wfrun.engine import Engine
        from wfrun.store import open_store

        clock: Any = SystemClock()
        if now is not None:
            try:
                clock = FakeClock(now)
            except ValueError as exc:
                relative = "" if now.strip().startswith("+") else \
                    ", or +DURATION from the clock's time (+7d1m)"
                raise UsageError(f"--now: {exc}{relative}") from None
        return Engine(open_store(self.store_url()), clock, workflows_dir=self.workflows_dir,
                      command=self.command())

    def missing_state_dir(self) -> str | None:
        """A sentence saying that the state directory does not exist (and how to name the right
        one), or None if it exists; nothing is created."""
        import os

        self.store_url()  # (a bad --store is said first)
        if self._kind != "file" or os.path.lexists(self.state_dir):  # (a file: the store says so)
            return None
        return (f"state directory {os.path.abspath(self.state_dir)} does not exist; point "
                "wfrun at yours with --state-dir DIR or WFRUN_STATE_DIR, or run it from the "
                "project directory (cron: cd /path/to/project && wfrun tick)")

    def created_state_dir(self, workflows: list[str]) -> str:
        """A sentence saying that a tick created the state directory, which did not exist, to
        keep the schedules of `workflows` (a mistyped --state-dir must not silently start a
        second store)."""
        import os

        whose = (f"workflow {workflows[0]}" if len(workflows) == 1
                 else f"workflows {', '.join(workflows)}")
        what = "schedules" if len(workflows) > 1 else "schedule"
        return (f"state directory {os.path.abspath(self.state_dir)} did not exist; tick created "
                f"it to keep the {what} of {whose} (if your state directory is another one, "
                "point wfrun at it with --state-dir DIR or WFRUN_STATE_DIR, or run tick from the "
                "project directory, and delete this one)")

    def command(self) -> str:
        """How printed commands start: `wfrun`, with `--store` or `--state-dir` when one was
        given (never a URL's password: it belongs in PGPASSWORD or ~/.pgpass)."""
        if self.store is not None:
            from wfrun.store import public_url

            return f"wfrun --store {shlex.quote(public_url(self.store))}"
        if self.explicit_state_dir:
            return f"wfrun --state-dir {shlex.quote(self.state_dir)}"
        return "wfrun"


def with_hint(message: str) -> str:
    """`message` as the user sees it: one saying that another process took a run over from
    this one (a lost lease: `ClaimLost`, which the store says as a fact) ends with how to look
    at that run, with this invocation's --store or --state-dir (`Settings.command`)."""
    found = TAKEN_OVER.search(message)
    if found is None:
        return message
    return f"{message} ({settings().command()} show {found[1]})"


def _same_path(a: str, b: str) -> bool:
    """Whether two spellings name one directory (`.wfstate`, `./.wfstate`, its absolute path)."""
    import os

    return os.path.realpath(a) == os.path.realpath(b)


_current = Settings(DEFAULT_STATE_DIR, DEFAULT_WORKFLOWS_DIR, False)


def settings() -> Settings:
    """The global options of this invocation."""
    return _current


def use(chosen: Settings) -> None:
    """Make `chosen` the global options of this invocation (the root command's callback)."""
    global _current
    _current = chosen
