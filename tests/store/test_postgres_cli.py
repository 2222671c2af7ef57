"""The command line over `--store postgresql://...`, as real processes: start, pending, resume,
tick, list, show, cancel, logs and doctor behave as on the file store, printed commands name the
store, and a server that cannot be reached is one sentence and exit 5."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest
from conftest import Outcome

APPROVE = """
    steps:
      - id: ask
        wait: true
      - id: after
        handler: done
"""
APPROVE_PY = """
    def done(ctx):
        print("after ran with", ctx.steps["ask"].resume_data)
        return ctx.steps["ask"].resume_data
"""
POLL = "steps: [{id: poll}, {id: nap, sleep: 1h}]"
POLL_PY = """
    def poll(ctx):
        if ctx.run.runs < 3:
            ctx.flow.rerun("10s", {"polls": ctx.run.runs}, 5)
        return ctx.run.runs
"""


class PgProject:
    """A project whose runs are kept in a PostgreSQL schema of their own."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        workflows = root / "workflows"
        workflows.mkdir()
        for name, manifest, module in (("approve", APPROVE, APPROVE_PY), ("poll", POLL, POLL_PY)):
            (workflows / f"{name}.yaml").write_text(textwrap.dedent(manifest))
            (workflows / f"{name}.py").write_text(textwrap.dedent(module))

    def cli(self, *args: str, store: str | None = None, env: dict[str, str] | None = None
            ) -> Outcome:
        """`python -m wfrun --store URL ARGS` in the project directory."""
        prefix = [] if store == "" else ["--store", store or self.url]
        return self.run([sys.executable, "-m", "wfrun", *prefix, *args], env)

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> Outcome:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=self.root,
                              env={**full_env, **(env or {})})
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    def store(self) -> Any:
        """The store, opened in this process (to look, where no command is under test)."""
        from wfrun.store.postgres import PostgresStore

        return PostgresStore(self.url)

    def json(self, *args: str) -> Any:
        out = self.cli(*args, "--json")
        assert out.code == 0, (out.code, out.stdout, out.stderr)
        return out.json()


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PgProject]:
    with _pg.schema() as url:
        yield PgProject(tmp_path, url)


def test_a_run_suspends_resumes_and_completes_on_postgresql(pg: PgProject) -> None:
    started = pg.cli("start", "approve")
    assert started.code == 0, started.stderr
    run_id = started.stdout.split()[1]
    # the printed commands name the store, so they work as printed
    resume_line = next(line for line in started.stdout.splitlines() if "resume:" in line)
    assert f"--store {shlex.quote(pg.url)}" in resume_line
    [pending] = pg.json("pending")
    assert (pending["run_id"], pending["step"]) == (run_id, "ask")
    assert f"--store {shlex.quote(pg.url)}" in pending["resume_command"]
    assert not (pg.root / ".wfstate").exists()  # nothing went to a state directory

    command = shlex.split(pending["resume_command"].replace("'{}'", "'{\"ok\": true}'"))
    assert command[0] == "wfrun"
    resumed = pg.run([sys.executable, "-m", "wfrun", *command[1:], "--json"])
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    assert resumed.json()["output"] == {"ok": True}

    again = pg.cli("resume", run_id, "--data", "{}")
    assert again.code == 3 and "Traceback" not in again.stderr
    shown = pg.json("show", run_id)
    assert [e["type"] for e in shown["history"]] == [
        "started", "suspended", "resumed", "step_completed", "step_started", "step_completed",
        "completed"]
    logs = pg.cli("logs", run_id)
    assert logs.code == 0 and "after ran with {'ok': True}" in logs.stdout
    doctor = pg.cli("doctor")
    assert doctor.code == 0 and "no problems" in doctor.stdout


@pytest.mark.slow  # real processes on PostgreSQL: CI runs it with -m slow
def test_tick_fires_reruns_and_sleeps_and_cancel_stops_a_run(pg: PgProject) -> None:
    doc = pg.json("start", "poll")
    run_id = doc["run_id"]
    assert doc["status"] == "waiting" and doc["waiting"][0]["kind"] == "rerun"
    due = doc["waiting"][0]["due_at"]
    first = pg.json("tick", "--now", due)
    assert first["advanced"] == [{"run_id": run_id, "step": "poll", "reason": "rerun",
                                  "status": "waiting"}]
    later = pg.json("tick", "--now", "2099-01-01T00:00:00Z")  # the last rerun, then the sleep
    assert [a["reason"] for a in later["advanced"]] == ["rerun"]
    assert pg.store().load(run_id).steps["nap"].status == "waiting"  # the sleep
    last = pg.json("tick", "--now", "2099-01-02T00:00:00Z")
    assert [(a["reason"], a["status"]) for a in last["advanced"]] == [("sleep", "completed")]
    assert pg.store().load(run_id).steps["poll"].output == 3

    other = pg.json("start", "approve")["run_id"]
    cancelled = pg.json("cancel", other, "--reason", "not needed")
    assert cancelled["status"] == "cancelled"
    assert [(r["run_id"], r["status"]) for r in pg.json("list", "--status", "cancelled")] == [
        (other, "cancelled")]
    assert pg.cli("cancel", other).code == 3


def test_wfrun_store_in_the_environment_names_the_store(pg: PgProject) -> None:
    run_id = pg.json("start", "approve")["run_id"]
    listed = pg.cli("list", "--json", store="", env={"WFRUN_STORE": pg.url})
    assert listed.code == 0, listed.stderr
    assert [r["run_id"] for r in listed.json()] == [run_id]
    # an option on the command line wins over the other one's environment variable
    local = pg.cli("--state-dir", "elsewhere", "list", "--json", store="",
                   env={"WFRUN_STORE": pg.url})
    assert local.code == 0 and local.json() == [], local.stderr
    assert "elsewhere does not exist" in local.stderr
    over = pg.cli("list", "--json", env={"WFRUN_STATE_DIR": "elsewhere"})  # --store URL given
    assert over.code == 0 and [r["run_id"] for r in over.json()] == [run_id], over.stderr
    # both on the command line, or both in the environment, naming two stores: refused
    both = pg.cli("--state-dir", ".wfstate", "list")  # (the default, spelled out)
    assert both.code == 2 and "give only one" in both.stderr
    both = pg.cli("list", store="", env={"WFRUN_STORE": pg.url, "WFRUN_STATE_DIR": ".wfstate"})
    assert both.code == 2 and "give only one" in both.stderr


@pytest.mark.parametrize("wrong", ["port", "database"])
def test_a_server_that_cannot_be_reached_is_one_sentence_and_exit_5(
    pg: PgProject, wrong: str
) -> None:
    parts = urlsplit(_pg.server_url())
    host = parts.hostname or "localhost"
    if wrong == "port":  # nothing listens there
        url, said = urlunsplit(parts._replace(netloc=f"{parts.username}@{host}:1")), \
            f"on {host}:1"
    else:
        url, said = urlunsplit(parts._replace(path="/wfrun_no_such_db")), \
            "database 'wfrun_no_such_db'"
    commands = [["list"], ["resume", "r1", "--data", "{}"]] if wrong == "port" else [
        ["start", "approve"], ["tick"]]
    for args in commands:
        out = pg.cli(*args, store=url)
        assert out.code == 5, (args, out)
        assert out.stdout == ""
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert said in out.stderr and "cannot connect to PostgreSQL" in out.stderr


def test_a_password_in_the_url_is_never_printed(pg: PgProject) -> None:
    with_password = pg.url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    out = pg.cli("start", "approve", store=with_password)  # trust auth: the password is unused
    assert out.code == 0, out.stderr
    assert "s3cret" not in out.stdout + out.stderr
    assert "--store 'postgresql://postgres@" in out.stdout
    assert json.dumps(pg.json("pending")).count("s3cret") == 0


@pytest.mark.parametrize("form", ["query", "host-in-query"])
def test_a_password_given_as_a_parameter_is_never_printed(pg: PgProject, form: str) -> None:
    parts = urlsplit(pg.url)
    if form == "query":
        url = f"{pg.url}&password=QsecretQ&sslpassword=QsslQ"
    else:  # postgresql:///DB?host=...: libpq's other spelling
        url = (f"postgresql://{parts.path}?host={parts.hostname}&port={parts.port}&"
               f"user={parts.username}&password=QsecretQ&{parts.query}&sslpassword=QsslQ")
    said = []
    started = pg.cli("start", "approve", store=url)  # trust auth: the password is unused
    assert started.code == 0, started.stderr
    assert "resume:" in started.stdout and "cancel:" in started.stdout
    run_id = started.stdout.split()[1]
    said.append(started)
    shown = pg.cli("show", run_id, "--json", store=url)
    assert shown.code == 0 and "resume_command" in shown.stdout, shown
    said += [shown, pg.cli("pending", "--json", store=url)]
    doctor, doctor_json = pg.cli("doctor", store=url), pg.cli("doctor", "--json", store=url)
    assert doctor.code == 0 and "checked 1 run(s) in postgresql://" in doctor.stdout, doctor
    assert doctor_json.code == 0 and doctor_json.json()["state_dir"].startswith("postgresql:")
    said += [doctor, doctor_json]
    copied = pg.cli("state", "copy", url, f"file:{pg.root / 'copy'}", "--json", store=url)
    assert copied.code == 0 and copied.json()["source"].startswith("postgresql:"), copied
    back = pg.cli("state", "copy", f"file:{pg.root / 'copy'}", url, "--json", store=url)
    assert back.code == 0 and back.json()["destination"].startswith("postgresql:"), back
    said += [copied, back]
    for out in said:
        assert "Qsecret" not in out.stdout + out.stderr and "QsslQ" not in out.stdout + out.stderr
        assert "password=" not in out.stdout + out.stderr, out
    # the printed command works as printed, with the password from elsewhere (PGPASSWORD)
    [line] = [line for line in started.stdout.splitlines() if "cancel:" in line]
    command = shlex.split(line.partition("cancel:")[2])
    assert command[0] == "wfrun"
    cancelled = pg.run([sys.executable, "-m", "wfrun", *command[1:], "--json"])
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled", cancelled


def test_a_command_in_a_sentence_can_be_copied_as_printed(pg: PgProject) -> None:
    started = pg.cli("start", "poll")  # a rerun in 10s: "...; COMMAND fires it"
    assert started.code == 0, started.stderr
    [line] = [line for line in started.stdout.splitlines() if line.endswith(" fires it")]
    said = line.partition("(runs so far: 1); ")[2].removesuffix(" fires it")
    assert said[0] == said[-1] == '"', line  # the URL's own quotes inside: double quotes around
    assert shlex.split(said[1:-1]) == ["wfrun", "--store", pg.url, "tick"]


def _serve(pg: PgProject) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    proc = subprocess.Popen([sys.executable, "-m", "wfrun", "--store", pg.url, "serve", "--port",
                             "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=pg.root, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
    assert match, (first, proc.stderr.read() if proc.poll() is not None else "")
    return proc, match[1]


@pytest.mark.slow  # real processes on PostgreSQL: CI runs it with -m slow
def test_two_servers_answer_the_links_of_one_database(pg: PgProject) -> None:
    servers = [_serve(pg), _serve(pg)]
    try:
        runs = [pg.json("start", "approve") for _ in range(2)]
        for (_, base), run in zip(servers, runs, strict=True):
            link = run["suspended"][0]["resume_url"]
            path = link[link.index("/runs/"):]
            request = urllib.request.Request(base + path, data=b'{"via": "http"}', method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 202
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and {
                pg.store().load(r["run_id"]).status for r in runs} != {"completed"}:
            time.sleep(0.05)
        for run in runs:
            doc = pg.json("show", run["run_id"])
            assert (doc["status"], doc["output"]) == ("completed", {"via": "http"})
            assert [e["type"] for e in doc["history"]].count("resumed") == 1
        # a used link is refused by either server
        link = runs[0]["suspended"][0]["resume_url"]
        again = urllib.request.Request(servers[1][1] + link[link.index("/runs/"):], data=b"{}",
                                       method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(again, timeout=10)
        assert refused.value.code in (404, 409)
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_without_the_driver_a_postgresql_url_says_what_to_install(tmp_path: Path) -> None:
    hide = ("import runpy, sys; sys.modules['psycopg'] = None; "  # as if it were not installed
            "sys.argv = ['wfrun', *sys.argv[1:]]; runpy.run_module('wfrun', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide, "--store", "postgresql://u@h/db", "list"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 5 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "pip install 'wfrun[postgres]'" in proc.stderr
