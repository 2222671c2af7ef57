"""`tick --workers N`: the due runs shared among worker processes forked from this one.

Each worker advances its share exactly as a lone tick would (the execution claim still keeps
two processes off one run, so this is the same as N overlapping cron ticks, minus N start-ups),
REPORT_EVERY runs at a time, and sends the report of each part back through a pipe once the
part is durable. Workers run step code concurrently, on separate runs only. A worker that dies
is reported with the parts it finished; its other runs are recovered by the next tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._tick import TickReport
    from .core import Engine

Share = Callable[["Engine", list[str]], "TickReport"]
MIN_SHARE = 16  # fewer due runs than this per worker: forking costs more than it saves
# A worker's runs are advanced and made durable this many at a time, each part reported as it
# is done: a worker that dies loses the report of one part at most (a flush costs ~1 ms).
REPORT_EVERY = 16


def worth_it(due: int, workers: int) -> bool:
    """True if `due` runs are enough to share among `workers` processes."""
    return workers > 1 and due >= 2 * MIN_SHARE and hasattr(os, "fork")


def tick_in_workers(engine: Engine, due: list[str], workers: int, advance: Share,
                    report: TickReport) -> None:
    """Advance `due` in up to `workers` forked processes; merge their reports into `report`."""
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
            _work(engine, share, advance, write_end)  # never returns
        os.close(write_end)
        children[read_end] = (pid, share)
    if inline:
        part = advance(engine, inline)
        report.advanced.extend(part.advanced)
        report.errors.extend(part.errors)
        report.warnings.extend(part.warnings)
    for share, data, status in _collect(engine, children):
        _merge(report, share, data, status)
    order = {run_id: i for i, run_id in enumerate(due)}
    report.advanced.sort(key=lambda item: order.get(item["run_id"], len(order)))


def _work(engine: Engine, share: list[str], advance: Share, pipe: int) -> None:
    """The worker: advance `share` part by part, write each part's report to `pipe` as a line
    of JSON once the part is durable, then a last line saying it is done; exit."""
    try:
        engine.store.after_fork()
        for start in range(0, len(share), REPORT_EVERY):
            if engine.should_stop():
                break
            part = advance(engine, share[start:start + REPORT_EVERY])
            _send(pipe, {"advanced": part.advanced, "errors": part.errors,
                         "warnings": part.warnings})
        _send(pipe, {"done": True})
    except BaseException as exc:  # reported by the parent, which goes on with the other shares
        with contextlib.suppress(BaseException):
            _send(pipe, {"done": True, "errors": [{"run_id": share[0], "message": (
                f"a tick worker stopped: {type(exc).__name__}: {exc}")}]})
    finally:
        os._exit(0)


def _send(pipe: int, payload: dict[str, object]) -> None:
    sys.stderr.flush()  # what its steps echoed; os._exit flushes nothing
    data = json.dumps(payload).encode() + b"\n"
    while data:
        data = data[os.write(pipe, data):]


def _collect(engine: Engine, children: dict[int, tuple[int, list[str]]]
             ) -> list[tuple[list[str], bytes, int]]:
    """Read every worker's report and reap it; pass a stop request (SIGTERM) on to them."""
    chunks: dict[int, list[bytes]] = {fd: [] for fd in children}
    done: list[tuple[list[str], bytes, int]] = []
    stopping = False
    while chunks:
        if not stopping and engine.should_stop():
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


def _merge(report: TickReport, share: list[str], data: bytes, status: int) -> None:
    """Add a worker's reports; if it died before its last line, say so and how far it got."""
    done, reported = False, 0
    for line in data.split(b"\n"):
        try:
            part = json.loads(line)
        except ValueError:
            continue  # the torn line of a worker that died while writing it
        if not isinstance(part, dict):
            continue
        report.advanced.extend(part.get("advanced", []))
        report.errors.extend(part.get("errors", []))
        report.warnings.extend(part.get("warnings", []))
        done = done or part.get("done") is True
        reported += 0 if part.get("done") else 1
    if done:
        return
    how = f"exit status {os.waitstatus_to_exitcode(status)}"
    left = share[reported * REPORT_EVERY:]
    report.errors.append({"run_id": left[0] if left else share[0], "message": (
        f"a tick worker died ({how}) while advancing {len(left)} run(s) from this one (the "
        f"{len(share) - len(left)} before it are reported); the runs it was executing are "
        "recovered by the next tick")})
