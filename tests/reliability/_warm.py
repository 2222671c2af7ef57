"""A pre-warmed launcher of `wfrun` processes, for the reliability suite.

A cold `python -m wfrun` spends ~200 ms importing before it touches a file, so "SIGKILL after
0-60 ms" would only ever kill the interpreter's start-up. This server imports wfrun and its
dependencies once, then forks one child per request: each child is a separate OS process that
runs the real CLI (`wfrun.cli.main`) with its own argv and environment and is killed for real.
`WFRUN_FAULT` is honoured exactly as in a cold process: the child sets the variable and
re-executes `wfrun.store._fsops`, which reads it at import and starts counting from zero.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
  {"args": [...], "env": {...}, "kill_after": seconds|null, "record": path|null, "umask": int|null}
      -> {"rc": int|null, "killed": bool, "stdout": str, "stderr": str}
  {"race": [[args...], ...], "env": {...}}   children start together (released by one pipe)
      -> {"results": [{"rc", "killed", "stdout", "stderr"}, ...]}
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

import filelock  # noqa: F401  (warm imports: what commands would load lazily)
import jsonschema
import rich.console
import rich.table  # noqa: F401
import typer.main
import yaml  # noqa: F401

import wfrun.cli
import wfrun.cli._render
import wfrun.engine
import wfrun.engine.queries
import wfrun.store._appends
import wfrun.store._faults
import wfrun.store._fsops
import wfrun.store.file

_OUT_DIR = tempfile.mkdtemp(prefix="wfrun-warm-")
# What `wfrun.cli.main()` builds on every call (typer -> click, ~17 ms); built once here.
_COMMAND = typer.main.get_command(wfrun.cli.app)
# jsonschema builds its meta-schema validators lazily (~40 ms); warm them like the imports
jsonschema.Draft202012Validator.check_schema({"type": "object"})
jsonschema.Draft202012Validator({}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _child(args: list[str], env: dict[str, str], out: str, err: str, record: str | None,
           gate: int | None, umask: int | None = None) -> None:
    """Body of a forked child: become `wfrun ARGS` and exit with its code (never returns)."""
    code = 1
    try:
        if gate is not None:
            os.read(gate, 1)  # blocks until the parent closes the pipe: all children go at once
        for fd, path in ((1, out), (2, err)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.environ.pop("WFRUN_FAULT", None)
        os.environ.update(env)
        importlib.reload(wfrun.store._faults)  # reads WFRUN_FAULT, op counter back to 0
        for kept in (wfrun.store._fsops, wfrun.store._appends):  # and no inherited descriptors
            importlib.reload(kept)
        if record:
            _record_writes(record)
        if umask is not None:  # as `umask 000; exec wfrun ...` in a shell
            os.umask(umask)
        sys.argv = ["wfrun", *args]
        try:
            _COMMAND.main(args=args, prog_name="wfrun")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()  # what the interpreter would print for an uncaught error
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _record_writes(record: str) -> None:
    """Log every durable write (path and bytes) to `record`: the states a command goes through."""
    fsops = wfrun.store._fsops
    original = fsops.durable_write

    def durable_write(path: str, data: bytes) -> None:
        original(path, data)
        with open(record, "a") as fh:
            fh.write(json.dumps({"path": path, "data": data.decode("utf-8", "replace")}) + "\n")

    fsops.durable_write = durable_write  # type: ignore[assignment]
    original_replace = fsops.durable_replace

    def durable_replace(path: str, data: bytes, *, sync_dir: bool = True) -> None:
        original_replace(path, data, sync_dir=sync_dir)
        with open(record, "a") as fh:
            fh.write(json.dumps({"path": path, "data": data.decode("utf-8", "replace")}) + "\n")

    fsops.durable_replace = durable_replace  # type: ignore[assignment]
    original_volatile = fsops.volatile_write

    def volatile_write(fd: int, data: bytes) -> None:  # a "step started" record (claim file)
        original_volatile(fd, data)
        with open(record, "a") as fh:
            path = os.readlink(f"/proc/self/fd/{fd}")
            fh.write(json.dumps({"path": path, "data": data.decode("utf-8", "replace")}) + "\n")

    fsops.volatile_write = volatile_write  # type: ignore[assignment]


def _reap(pid: int, kill_after: float | None) -> tuple[int | None, bool]:
    """Wait for a child, SIGKILLing it after `kill_after` seconds if it is still running."""
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), False
            time.sleep(min(0.0005, max(0.0, deadline - time.monotonic())))
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return None, True
    return os.waitstatus_to_exitcode(status), False


def _collect(rc: int | None, killed: bool, out: str, err: str) -> dict[str, Any]:
    texts = []
    for path in (out, err):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                texts.append(fh.read())
            os.unlink(path)
        except FileNotFoundError:
            texts.append("")
    return {"rc": rc, "killed": killed, "stdout": texts[0], "stderr": texts[1]}


def _paths(n: int) -> tuple[str, str]:
    stem = os.path.join(_OUT_DIR, f"{os.getpid()}-{time.monotonic_ns()}-{n}")
    return stem + ".out", stem + ".err"


def serve() -> None:
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        env = request.get("env") or {}
        if "race" in request:
            gate_r, gate_w = os.pipe()
            children = []
            for n, args in enumerate(request["race"]):
                out, err = _paths(n)
                replies.flush()
                pid = os.fork()
                if pid == 0:
                    os.close(gate_w)
                    _child(args, env, out, err, None, gate_r)
                children.append((pid, out, err))
            os.close(gate_r)
            time.sleep(0.05)  # let every child reach the gate
            os.close(gate_w)
            results = [_collect(*_reap(pid, None), out, err) for pid, out, err in children]
            reply: dict[str, Any] = {"results": results}
        else:
            out, err = _paths(0)
            replies.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["args"], env, out, err, request.get("record"), None,
                       request.get("umask"))
            rc, killed = _reap(pid, request.get("kill_after"))
            reply = _collect(rc, killed, out, err)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    gc.freeze()  # children share the warm heap instead of copying it page by page
    try:
        serve()
    finally:
        os.rmdir(_OUT_DIR)
