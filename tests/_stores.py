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
from wfrun.errors import ClaimLost
from wfrun.store.abc import Store

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


class InProcessHolder(Holder):
    """A holder in this process (a store object of its own) that stops renewing its lease, as
    a paused process does, and is outlived by moving the clock past the lease's end."""

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
        renewed, lost = self.claim.renew(), self.claim.lost
        try:
            self.save_output("stale holder")
            saved = "saved"
        except ClaimLost as exc:  # (any other refusal is not the lost lease's: it fails)
            saved = str(exc)
        return _refused(renewed, lost, saved)


def _refused(renewed: bool, lost: bool, saved: str) -> str:
    """"refused" if a former holder's renewal failed, it knows its lease is lost and its save
    was refused for that; else what went through."""
    went_through = [what for what, happened in (("renew", renewed), ("lost is False", not lost),
                                                (f"save: {saved}", "lost its lease" not in saved))
                    if happened]
    return "; ".join(went_through) or "refused"


_HOLD = """
import json, sys
from wfrun.errors import ClaimLost
from wfrun.store import open_store
store, run_id = open_store(sys.argv[1]), sys.argv[2]
claim = store.claim(run_id)
print(json.dumps(None if claim is None else claim.token), flush=True)
for line in sys.stdin:
    if line.strip() == '"stale"':  # taken over meanwhile: what can it still do?
        renewed, lost = claim.renew(), claim.lost
        run = store.load(run_id)
        run.output = "stale holder"
        try:
            store.save(run)
            saved = "saved"
        except ClaimLost as exc:  # (any other refusal is not the lost lease's: it fails)
            saved = str(exc)
        print(json.dumps([renewed, lost, saved]), flush=True)
        continue
    run = store.load(run_id)
    run.output = json.loads(line)
    store.save(run)
    print(json.dumps("saved"), flush=True)
"""


class ProcessHolder(Holder):
    """A holder in a process of its own (`python -c`) that goes away by being killed, or, with
    `pause`, by being stopped (SIGSTOP) until its lease (`lease`, through WFRUN_LEASE) runs
    out; a stopped holder is continued (SIGCONT) when asked what it can still do."""

    def __init__(self, url: str, run_id: str, pause: bool = False, lease: str = "2s") -> None:
        env = {**os.environ, "WFRUN_LEASE": lease}
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLD, url, run_id], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pause = pause
        token = self._reply()
        assert isinstance(token, int), f"{run_id} is claimed already"
        self.token = token

    def _ask(self, value: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def _reply(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the holder process exited ({self.proc.wait(10)})"
        return json.loads(line)

    def save_output(self, value: Any) -> None:
        assert self._ask(value) == "saved"

    def go_away(self) -> None:
        self.proc.send_signal(signal.SIGSTOP if self.pause else signal.SIGKILL)
        if not self.pause:
            self.proc.wait(10)

    def after_takeover(self) -> str:
        if self.proc.poll() is not None:
            return "gone"
        self.proc.send_signal(signal.SIGCONT)
        renewed, lost, saved = self._ask("stale")
        return _refused(renewed, lost, saved)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
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

    def remove_state(self, run_id: str) -> None:
        """Remove a run's state by hand, as a user might (its history and logs stay)."""
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
        return InProcessHolder(self.open(), run_id, self.clock)

    def remove_state(self, run_id: str) -> None:
        with self.backing.mutex:
            del self.backing.runs[run_id]


class FileBackend(Backend):
    kind = "file"

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root, self.clock = root, clock

    def open(self) -> Store:
        from wfrun.store.file import FileStore

        return FileStore(self.root)

    def snapshot(self, run_id: str) -> Path:
        """The run's snapshot file."""
        from wfrun.store.file import FileStore

        return Path(FileStore(self.root).snapshot_path(run_id))

    def stored(self, run_id: str) -> bytes:
        return self.snapshot(run_id).read_bytes()

    def corrupt(self, run_id: str) -> None:
        path = self.snapshot(run_id)
        raw = bytearray(path.read_bytes())
        index = raw.index(b'"wf"') + 2
        raw[index] = ord("x")  # still valid JSON: only the checksum can tell
        path.write_bytes(bytes(raw))

    def hold(self, run_id: str) -> Holder:
        return ProcessHolder(os.fspath(self.root), run_id)  # a flock ends with its process

    def remove_state(self, run_id: str) -> None:
        self.snapshot(run_id).rename(self.root / f"{run_id}.json.moved-away")


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
        # a paused process keeps its session (and the session's locks): its lease runs out,
        # 2 s after its last renewal (long enough that a busy machine still renews it in time)
        return ProcessHolder(self.url, run_id, pause=True, lease="2s")

    def remove_state(self, run_id: str) -> None:
        self._sql("DELETE FROM wfrun_runs WHERE run_id = %s", run_id)


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
