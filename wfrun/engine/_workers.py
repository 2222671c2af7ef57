"""`tick --workers N`: the due runs shared among worker processes forked from this one.

Each worker advances its share exactly as a lone tick would (the execution claim still keeps
two processes off one run, so this is the same as N overlapping cron ticks, minus N start-ups;
on a store whose `acquire_due` processes share, PostgreSQL, a share is only a number of runs,
which the worker acquires in batches, skipping those another worker took: `Tried`)
and sends what it did back through a pipe, a line of JSON after each run, then a last line
once all of it is durable. Workers run step code concurrently, on separate runs only. A worker
that dies is reported; the parent makes the runs it had reported durable and reports them too,
and the run it was executing is recovered by the next tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from collections.abc import Callable
from typing import Any

from wfrun.store.abc import Batch

from ._result import TickReport
from ._runner_api import RunnerAPI

Share = Callable[[RunnerAPI, list[str], Callable[[TickReport], None] | None], TickReport]
MIN_SHARE = 16  # fewer due runs than this per worker: forking costs more than it saves


class Tried:
    """The runs a tick took to advance (advanced, or failed to), each skipped for the rest of
    the tick if it is acquired again: a run that could not be read or advanced is still due.

    A shared one (`share`, before the workers are forked) is one set for all of them: on a
    store whose `acquire_due` processes share, a run one worker took is skipped by the
    others too, so it is tried once per tick and uses up no other worker's share. They share
    an unlinked temporary file, a line per run, each appended with one write."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._fd = -1  # the shared file (-1: none)
        self._read = 0  # how much of it `_known` holds

    def share(self) -> None:
        """Share this set with the processes forked from now on (not shared if no file can be
        made: each then keeps its own, as a lone tick does)."""
        import fcntl
        import tempfile

        try:
            fd, path = tempfile.mkstemp(prefix="wfrun-tick-")
        except OSError:
            return
        try:
            os.unlink(path)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        except OSError:
            os.close(fd)
            return
        self._fd = fd

    def add(self, run_id: str) -> None:
        """Note that this process took the run (before it is advanced and its claim let go)."""
        self._known.add(run_id)
        if self._fd >= 0:
            try:
                os.write(self._fd, run_id.encode() + b"\n")  # a run id is ASCII
            except OSError:  # (a full disk) the others may take it too, as without a share
                self.close()

    def __contains__(self, run_id: object) -> bool:
        """True if this process or, once shared, any worker of the tick took the run."""
        if self._fd >= 0:
            try:
                size = os.fstat(self._fd).st_size
                data = os.pread(self._fd, size - self._read, self._read) \
                    if size > self._read else b""
            except OSError:
                data = b""
            whole = data.rfind(b"\n") + 1  # a line still being written is read next time
            self._known.update(line.decode() for line in data[:whole].split(b"\n") if line)
            self._read += whole
        return run_id in self._known

    def close(self) -> None:
        """Stop sharing (the set is kept); idempotent."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)


def worth_it(due: int, workers: int) -> bool:
    """True if `due` runs are enough to share among `workers` processes."""
    return workers > 1 and due >= 2 * MIN_SHARE and hasattr(os, "fork")


def tick_in_workers(runner: RunnerAPI, due: list[str], workers: int, advance: Share,
                    report: TickReport, batch: Batch) -> None:
    """Advance `due` in up to `workers` forked processes; merge their reports into `report`
    (the runs of a worker that died before its batch closed are left to `batch`)."""
    workers = min(workers, len(due) // MIN_SHARE)
    sys.stdout.flush()
    sys.stderr.flush()
    children: dict[int, tuple[int, list[str]]] = {}  # read end -> (pid, share)
    inline: list[str] = []  # shares no process could be forked for: advanced here
    for index in range(workers):
        share = due[index::workers]
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # out of processes or memory: this process does that share itself
            os.close(read_end)
            os.close(write_end)
            inline.extend(share)
            continue
        if pid == 0:
            os.close(read_end)
            _work(runner, share, advance, write_end)  # never returns
        os.close(write_end)
        children[read_end] = (pid, share)
    if inline:
        part = advance(runner, inline, None)
        report.advanced.extend(part.advanced)
        report.errors.extend(part.errors)
        report.warnings.extend(part.warnings)
    for share, data, status in _collect(runner, children):
        _merge(batch, report, share, data, status)
    order = {run_id: i for i, run_id in enumerate(due)}
    report.advanced.sort(key=lambda item: order.get(item["run_id"], len(order)))


def _work(runner: RunnerAPI, share: list[str], advance: Share, pipe: int) -> None:
    """The worker: advance `share`, writing to `pipe` a line of JSON with what each run did,
    then a last line once the tick's flush made it all durable; exit."""
    sent = {"advanced": 0, "errors": 0, "warnings": 0}  # how many of each are in the pipe

    def send(part: TickReport, done: bool = False) -> None:
        payload: dict[str, object] = {"done": True} if done else {}
        for key, count in sent.items():
            items: list[Any] = getattr(part, key)
            if len(items) > count:
                payload[key], sent[key] = items[count:], len(items)
        if payload:
            _write(pipe, payload)

    try:
        send(advance(runner, share, send), done=True)
    except BaseException as exc:  # reported by the parent, which goes on with the other shares
        with contextlib.suppress(BaseException):
            # what it reported may not be durable (its flush may be what failed)
            _write(pipe, {"done": True, "flushed": False, "errors": [{"run_id": share[0],
                          "message": f"a tick worker stopped: {type(exc).__name__}: {exc}"}]})
    finally:
        os._exit(0)


def _write(pipe: int, payload: dict[str, object]) -> None:
    sys.stderr.flush()  # what its steps echoed; os._exit flushes nothing
    data = json.dumps(payload).encode() + b"\n"
    while data:
        data = data[os.write(pipe, data):]


def _collect(runner: RunnerAPI, children: dict[int, tuple[int, list[str]]]
             ) -> list[tuple[list[str], bytes, int]]:
    """Read every worker's report and reap it; pass a stop request (SIGTERM) on to them."""
    chunks: dict[int, list[bytes]] = {fd: [] for fd in children}
    done: list[tuple[list[str], bytes, int]] = []
    stopping = False
    while chunks:
        if not stopping and runner.should_stop():
            stopping = True
            for pid, _ in children.values():
                _signal(pid)
        ready, _, _ = select.select(list(chunks), [], [], 0.2)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
                continue
            os.close(fd)
            pid, share = children[fd]
            _, status = os.waitpid(pid, 0)
            done.append((share, b"".join(chunks.pop(fd)), status))
    return done


def _signal(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has finished already
        os.kill(pid, signal.SIGTERM)


def _merge(batch: Batch, report: TickReport, share: list[str], data: bytes,
           status: int) -> None:
    """Add a worker's report. If it died before its last line, or stopped before its batch
    closed, the runs it reported may not be durable: this process's batch makes them so."""
    done, flushed, advanced, errors, warnings = False, True, [], [], []
    for line in data.split(b"\n"):
        try:
            part = json.loads(line)
        except ValueError:
            continue  # the torn line of a worker that died while writing it
        if isinstance(part, dict):
            advanced.extend(part.get("advanced", []))
            errors.extend(part.get("errors", []))
            warnings.extend(part.get("warnings", []))
            done = done or part.get("done") is True
            flushed = flushed and part.get("flushed") is not False
    report.warnings.extend(warnings)
    if not (done and flushed):
        runs = sorted({item["run_id"] for item in advanced} | {e["run_id"] for e in errors})
        batch.adopt(runs)
    if not done:
        left = max(0, len(share) - len({item["run_id"] for item in advanced}))
        how = f"exit status {os.waitstatus_to_exitcode(status)}"
        errors.append({"run_id": share[0], "message": (
            f"a tick worker died ({how}) with {left} of its {len(share)} due run(s) not "
            "reported; the run it was executing is recovered by the next tick")})
    report.advanced.extend(advanced)
    report.errors.extend(errors)
