"""The stores tests run against (memory, file, PostgreSQL), each as a `Backend`: it opens store
objects over one storage (as separate processes would), damages a stored run the way its store
must detect, and lends a claim to another holder that can be made to go away.

`backend(kind, tmp_path)` makes one; `KINDS` is what fixtures are parametrized over. The
PostgreSQL backend needs a server (tests/_pg.py): without one its tests skip, except in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _pg

from wfrun.clock import FakeClock
from wfrun.errors import ConflictError
from wfrun.store.abc import ExecutionClaim, Store

KINDS = ("memory", "file", "postgres")
START = "2026-01-01T00:00:00Z"  # where a backend's fake clock starts


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """True once `condition` holds (checked every 10 ms), False if it never did in time."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Holder:
    """Another process holding a run's execution claim: it saves while it holds the claim,
    then goes away, and is asked afterwards what it can still do."""

    token: int  # its claim's fencing token

    def save_output(self, value: Any) -> None:
        """Load the run, set its output to `value` and save it, as the claim's holder."""
        raise NotImplementedError

    def go_away(self) -> None:
        """Stop holding the claim the way a holder of this store loses it."""
        raise NotImplementedError

    def after_takeover(self) -> str:
        """What the former holder can still do once another took the run over: "gone" if it
        no longer exists (its process died), "refused" if it exists and everything it tries
        is refused (renewing, saving) and it knows its lease is lost; else what went through."""
        raise NotImplementedError

    def close(self) -> None:
        """Clean up (end a process left running)."""


class PausedHolder(Holder):
    """A holder in this process (a store object of its own) that stops renewing its lease and
    outlives it: the clock is moved past the lease's end."""

    def __init__(self, store: Any, run_id: str, clock: FakeClock) -> None:
        claim = store.claim(run_id)
        assert claim is not None, f"{run_id} is claimed already"
        self.store, self.run_id, self.clock, self.claim = store, run_id, clock, claim
        self.token = claim.token

    def save_output(self, value: Any) -> None:
        run = self.store.load(self.run_id)
        run.output = value
        self.store.save(run)

    def go_away(self) -> None:
        self.store.stop_renewing()
        self.clock.advance(self.store.lease_seconds + 1)

    def after_takeover(self) -> str:
        went_through = []
        if self.claim.renew():
            went_through.append("renew")
        if not self.claim.lost:
            went_through.append("lost is False")
        try:
            self.save_output("stale holder")
            went_through.append("save")
        except ConflictError as exc:
            if "lost its lease" not in str(exc):
                went_through.append(f"save refused for another reason: {exc}")
        return "; ".join(went_through) or "refused"


_HOLD = """
import json, sys
from wfrun.store import open_store
store = open_store(sys.argv[1])
claim = store.claim(sys.argv[2])
print(json.dumps(None if claim is None else claim.token), flush=True)
for line in sys.stdin:
    try:
        run = store.load(sys.argv[2])
        run.output = json.loads(line)
        store.save(run)
        print(json.dumps("saved"), flush=True)
    except Exception as exc:
        print(json.dumps(f"{type(exc).__name__}: {exc}"), flush=True)
"""


class ProcessHolder(Holder):
    """A holder in a process of its own (`python -c`), which goes away by being killed."""

    def __init__(self, url: str, run_id: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLD, url, run_id],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        token = self._reply()
        assert isinstance(token, int), f"{run_id} is claimed already"
        self.token = token

    def _reply(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the holder process exited ({self.proc.wait(10)})"
        return json.loads(line)

    def save_output(self, value: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value) + "\n")
        self.proc.stdin.flush()
        assert self._reply() == "saved"

    def go_away(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def after_takeover(self) -> str:
        return "gone" if self.proc.poll() is not None else "still running"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.go_away()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Backend:
    """One storage under test."""

    kind: str
    clock: FakeClock  # the clock the store's leases expire by (where they do)

    def open(self) -> Store:
        """A new store object over the storage (as another process would open it)."""
        raise NotImplementedError

    def stored(self, run_id: str) -> bytes:
        """What is stored for the run's state, as stored."""
        raise NotImplementedError

    def corrupt(self, run_id: str) -> None:
        """Damage the state of a run that is executing (status `running`) so that only the
        store's verification can tell."""
        raise NotImplementedError

    def hold(self, run_id: str) -> Holder:
        """Another process that claims the run (and holds the claim until it goes away)."""
        raise NotImplementedError


class MemoryBackend(Backend):
    kind = "memory"

    def __init__(self, clock: FakeClock) -> None:
        from wfrun.store.memory import MemoryBacking

        self.clock = clock
        self.backing = MemoryBacking(clock)

    def open(self) -> Store:
        from wfrun.store.memory import MemoryStore

        return MemoryStore(self.backing)

    def stored(self, run_id: str) -> bytes:
        return self.backing.runs[run_id].snapshot.encode()

    def corrupt(self, run_id: str) -> None:
        row = self.backing.runs[run_id]
        damaged = row.snapshot.replace('"status": "running"', '"status": "bogus"', 1)
        assert damaged != row.snapshot
        row.snapshot = damaged  # a hand edit that leaves valid JSON: a status wfrun never writes

    def hold(self, run_id: str) -> Holder:
        return PausedHolder(self.open(), run_id, self.clock)


class FileBackend(Backend):
    kind = "file"

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root, self.clock = root, clock

    def open(self) -> Store:
        from wfrun.store.file import FileStore

        return FileStore(self.root)

    def stored(self, run_id: str) -> bytes:
        return Path(self.open().describe(run_id)).read_bytes()

    def corrupt(self, run_id: str) -> None:
        path = Path(self.open().describe(run_id))
        raw = bytearray(path.read_bytes())
        index = raw.index(b'"wf"') + 2
        raw[index] = ord("x")  # still valid JSON: only the checksum can tell
        path.write_bytes(bytes(raw))

    def hold(self, run_id: str) -> Holder:
        return ProcessHolder(os.fspath(self.root), run_id)  # a flock ends with its process


class PostgresBackend(Backend):
    kind = "postgres"

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url, self.clock = url, clock

    def open(self) -> Store:
        from wfrun.store.postgres import PostgresStore

        return PostgresStore(self.url)

    def _sql(self, query: str, run_id: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, [run_id])
            return cur.fetchall() if cur.description else []

    def stored(self, run_id: str) -> bytes:
        rows = self._sql("SELECT snapshot::text FROM wfrun_runs WHERE run_id = %s", run_id)
        return str(rows[0][0]).encode()

    def corrupt(self, run_id: str) -> None:
        # a hand edit that leaves valid JSON: a status wfrun never writes
        self._sql("UPDATE wfrun_runs SET snapshot = replace(snapshot::text, "
                  "'\"status\": \"running\"', '\"status\": \"bogus\"')::json "
                  "WHERE run_id = %s", run_id)

    def hold(self, run_id: str) -> Holder:
        return ProcessHolder(self.url, run_id)


@contextmanager
def backend(kind: str, tmp_path: Path, clock: FakeClock | None = None) -> Iterator[Backend]:
    """A backend of `kind` (one of KINDS) with fresh, empty storage: a file store's directory
    under `tmp_path`, a PostgreSQL schema of its own (dropped afterwards), or a memory
    backing; `clock` (a FakeClock at START if None) is what leases expire by."""
    clock = clock if clock is not None else FakeClock(START)
    if kind == "memory":
        yield MemoryBackend(clock)
    elif kind == "file":
        yield FileBackend(tmp_path / "state", clock)
    elif kind == "postgres":
        with _pg.schema() as url:
            yield PostgresBackend(url, clock)
    else:
        raise ValueError(f"no store of kind {kind!r}; one of {', '.join(KINDS)}")


def claimed(claim: ExecutionClaim | None) -> ExecutionClaim:
    """The claim, asserted to have been had."""
    assert claim is not None, "the claim was refused"
    return claim
