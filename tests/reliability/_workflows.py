"""The reliability suite's workflows, written by one builder (`write_workflows`) for the
file-store trials (`_relutil`) and the PostgreSQL proofs (`_pgproject`), which differ only in
the parameters they pass.

Every step calls `_log(ctx, note)`: it appends one line for the attempt to the ledger file that
`WFRUN_TEST_LEDGER` names (one `write()` with O_APPEND), so a test can count how many times each
step attempt really executed, and sleeps `WFRUN_TEST_STEP_SLEEP` seconds (given to some trials
only), which widens the window in which a kill lands mid-step.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

TOKEN_SCHEMA = "{type: object, required: [token], properties: {token: {type: string}}}"

# The head of every step module, after the constants `write_workflows` sets: PROCESSES (the
# line names the process group, the process and the time), SLEEP_FIRST (the sleep comes before
# the line, so that an attempt killed in it leaves none) and OUTPUTS (the last steps return
# what they did rather than None).
_LEDGER = '''

def _sleep():
    delay = float(os.environ.get("WFRUN_TEST_STEP_SLEEP") or 0)
    if delay:
        time.sleep(delay)


def _log(ctx, note=""):
    if SLEEP_FIRST:
        _sleep()
    path = os.environ.get("WFRUN_TEST_LEDGER")
    if path:
        who = f"{os.getpgid(0)} {os.getpid()} {time.time():.3f} " if PROCESSES else ""
        line = f"{ctx.run_id} {ctx.step} {ctx.run.runs} {who}{note}\\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    if not SLEEP_FIRST:
        _sleep()


def _output(value):
    return value if OUTPUTS else None
'''


def _workflows(max_attempts: int) -> dict[str, tuple[str, str]]:
    """name -> (manifest, step module without its head). `flow` and `ask` suspend (`flow` in a
    wait step, `ask` in code, its link to the ledger); `poll`, `nap`, `flaky` and `lapse` each
    leave one kind of timer due; `pipeline` has a rerun, a suspension, a retry and a sleep."""
    retry = f"{{max_attempts: {max_attempts}, delay: 1s}}"
    return {
        "flow": (f"""
            name: flow
            steps:
              - id: a
              - id: approve
                wait: true
                timeout: 3650d
                resume_schema: {TOKEN_SCHEMA}
              - id: b
            """, """
            def a(ctx):
                _log(ctx)
                return {"a": ctx.run.runs}

            def b(ctx):
                token = (ctx.steps["approve"].resume_data or {}).get("token")
                _log(ctx, token)
                return {"token": token}
            """),
        "ask": (f"""
            name: ask
            steps:
              - id: ask
                resume_schema: {TOKEN_SCHEMA}
              - id: answer
            """, """
            def ask(ctx):
                links = ctx.flow.suspend(timeout="3650d")
                _log(ctx, links.resume_url)
                return {"asked": ctx.run.runs}

            def answer(ctx):
                token = ctx.steps["ask"].resume_data["token"]
                _log(ctx, token)
                return token
            """),
        "poll": ("""
            name: poll
            steps:
              - id: poll
              - id: after
            """, """
            def poll(ctx):
                _log(ctx)
                ctx.log.info(f"poll attempt {ctx.run.runs} done")  # (fenced like saves)
                if ctx.run.runs == 1:
                    ctx.flow.rerun("1s", context={"polled": 1})
                return {"runs": ctx.run.runs}

            def after(ctx):
                _log(ctx)
                return _output("done")
            """),
        "nap": ("""
            name: nap
            steps:
              - id: first
              - id: nap
                sleep: 1s
              - id: after
            """, """
            def first(ctx):
                _log(ctx)

            def after(ctx):
                _log(ctx)
                return _output("done")
            """),
        "flaky": (f"""
            name: flaky
            steps:
              - id: flaky
                retry: {retry}
              - id: after
            """, """
            def flaky(ctx):
                _log(ctx)
                if ctx.run.runs == 1:
                    raise RuntimeError("the first attempt fails")
                return "ok"

            def after(ctx):
                _log(ctx)
                return _output("done")
            """),
        "lapse": ("""
            name: lapse
            steps:
              - id: approve
                wait: true
                timeout: 1s
                on_timeout: resume
              - id: after
            """, """
            def after(ctx):
                _log(ctx)
                return _output("done")
            """),
        "pipeline": (f"""
            name: pipeline
            steps:
              - id: poll
              - id: approve
                wait: true
                timeout: 3650d
                resume_schema: {TOKEN_SCHEMA}
              - id: work
                retry: {retry}
              - id: nap
                sleep: 1s
              - id: done
            """, """
            def poll(ctx):
                _log(ctx)
                if ctx.run.runs == 1:
                    ctx.flow.rerun("1s")

            def work(ctx):
                token = ctx.steps["approve"].resume_data["token"]
                _log(ctx, token)
                if ctx.run.runs == 1:
                    raise RuntimeError("the first attempt fails")
                return _output(token)

            def done(ctx):
                _log(ctx)
                return _output("done")
            """),
    }


def write_workflows(directory: Path, names: Iterable[str], *, max_attempts: int,
                    processes: bool, sleep_first: bool, outputs: bool) -> Path:
    """Write the workflows `names` (`NAME.yaml` and `NAME.py`) into `directory` and return it.

    `max_attempts`: of the retried steps. `processes`: a ledger line is `RUN STEP RUNS PGID PID
    UNIXTIME NOTE` rather than `RUN STEP RUNS NOTE`. `sleep_first`: a step sleeps before it
    writes its line (else after). `outputs`: `after`, `done` and `work` return "done" or the
    token they used (else None)."""
    head = (f"import os\nimport time\n\nPROCESSES = {processes}\nSLEEP_FIRST = {sleep_first}\n"
            f"OUTPUTS = {outputs}\n{_LEDGER}")
    workflows = _workflows(max_attempts)
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        manifest, module = workflows[name]
        (directory / f"{name}.yaml").write_text(textwrap.dedent(manifest))
        (directory / f"{name}.py").write_text(head + textwrap.dedent(module))
    return directory
