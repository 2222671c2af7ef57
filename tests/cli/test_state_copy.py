"""`wfrun state copy SRC DST` (SPEC §10): a file store moves to PostgreSQL and back with its runs
(suspended, sleeping, completed, failed, a child run, an inbox), histories, logs, start tokens,
schedule states and URL key; resume links made before the copy work against the copy; a second
copy copies nothing; conflicts, a foreign key, runs being executed, a missing or unreadable
source are refused or reported. Commands run through the real command line (CliRunner)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _pg
import pytest
from conftest import Outcome
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.clock import SystemClock
from wfrun.engine import Engine
from wfrun.http import WfrunServer
from wfrun.store import open_store
from wfrun.store._copy import CopyReport, Expected, copy_state, verify

WORKFLOWS = {
    "approval": ("""
        name: approval
        steps:
          - id: ask
          - id: approve
            wait: true
            resume_schema: {type: object, required: [approved], properties: {approved: {type: boolean}}}
          - id: after
            needs: [approve]
    """, """
        def ask(ctx):
            print("asking about", ctx.input.get("what"))
            ctx.log.info("asked")
            return {"asked": True}

        def after(ctx):
            return {"approved": ctx.steps["approve"].output}
    """),
    "nap": ("steps: [{id: first}, {id: nap, sleep: 1h}, {id: last}]", """
        def first(ctx):
            return 1

        def last(ctx):
            return "woke"
    """),
    "done": ("steps: [{id: work}]", "def work(ctx):\n    return {'n': 1}\n"),
    "boom": ("steps: [{id: explode}]", "def explode(ctx):\n    raise ValueError('no luck')\n"),
    "parent": ("steps: [{id: prep}, {id: review, workflow: approval}]",
               "def prep(ctx):\n    return {'prepared': True}\n"),
    "tickly": ("schedule: {every: 15m}\nsteps: [{id: work}]", "def work(ctx):\n    return 1\n"),
}


class Stores:
    """A project directory with the workflows above, and the CLI run against any store URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workflows = root / "workflows"
        self.workflows.mkdir()
        for name, (manifest, module) in WORKFLOWS.items():
            (self.workflows / f"{name}.yaml").write_text(textwrap.dedent(manifest))
            (self.workflows / f"{name}.py").write_text(textwrap.dedent(module))

    def file(self, name: str) -> str:
        return f"file:{self.root / name}"

    def wfrun(self, store: str, *args: str) -> Outcome:
        """`wfrun --store STORE ARGS` in this process."""
        result = CliRunner().invoke(
            app, ["--store", store, "--workflows-dir", str(self.workflows), *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def json(self, store: str, *args: str) -> Any:
        out = self.wfrun(store, *args, "--json")
        assert out.code in (0, 1), (out.code, out.stdout, out.stderr)
        return out.json()

    def copy(self, src: str, dst: str, *options: str) -> Outcome:
        result = CliRunner().invoke(app, ["state", "copy", src, dst, *options])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def populate(self, store: str) -> dict[str, str]:
        """Runs in every status, a child run, an inbox, logs, two tokens (one revoked) and a
        paused schedule; the ids by kind."""
        ids = {"suspended": self.json(store, "start", "approval", "--input", '{"what": "tea"}')
               ["run_id"],
               "sleeping": self.json(store, "start", "nap")["run_id"],
               "completed": self.json(store, "start", "done")["run_id"],
               "failed": self.json(store, "start", "boom")["run_id"],
               "parent": self.json(store, "start", "parent", "--input", '{"what": "cake"}')
               ["run_id"]}
        ids["child"] = f"{ids['parent']}--review"
        assert self.wfrun(store, "send", ids["suspended"], "poke", "--data", '{"a": 1}').code == 0
        for name in ("shop", "old"):
            assert self.wfrun(store, "token", "create", "--workflow", "done", "--name", name).code == 0
        assert self.wfrun(store, "token", "revoke", "old").code == 0
        assert self.wfrun(store, "schedules", "pause", "tickly").code == 0
        return ids

    def everything(self, store: str, ids: dict[str, str]) -> dict[str, Any]:
        """What the CLI shows of a store: each run's document with history (links included),
        its logs, pending, the tokens and the schedule state; the printed commands name the
        store, shown as STORE."""
        seen = {"runs": {kind: self.json(store, "show", run_id) for kind, run_id in ids.items()},
                "logs": {kind: self.wfrun(store, "logs", run_id).stdout for kind, run_id in ids.items()},
                "pending": sorted(json.dumps(p, sort_keys=True)
                                  for p in self.json(store, "pending")),
                "tokens": self.json(store, "token", "list"),
                "schedule": open_store(store).schedule_state("tickly")}
        text = json.dumps(seen, sort_keys=True)
        assert "--store STORE" not in text
        return json.loads(text.replace(shlex.quote(store), "STORE").replace(store, "STORE"))


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stores:
    for name in [n for n in os.environ if n.startswith("WFRUN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    return Stores(tmp_path)


@contextlib.contextmanager
def serving(stores: Stores, store: str) -> Iterator[str]:
    """`wfrun serve` over `store` on a free loopback port, in this process; its base URL."""
    holder: dict[str, str] = {}

    def engine() -> Engine:
        return Engine(open_store(store), SystemClock(), workflows_dir=str(stores.workflows),
                      base_url=holder["base"])

    httpd = WfrunServer("127.0.0.1", 0, engine, workers=1)
    holder["base"] = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["base"]
    finally:
        httpd.shutdown()
        httpd.close()
        thread.join(5)


def post(base: str, link: str, body: dict[str, Any]) -> int:
    """POST a JSON body to a link's path on the server at `base`; the status."""
    import urllib.error
    import urllib.request

    parts = urlsplit(link)
    request = urllib.request.Request(f"{base}{parts.path}?{parts.query}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def settled(store: str, run_id: str) -> str:
    """The run's status once no process executes it any more (the server continues in the
    background after answering; its claim goes last, after the history and the indexes)."""
    deadline = time.monotonic() + 15
    while True:
        opened = open_store(store)
        status = opened.load(run_id).status
        settled = status != "running" and not opened.is_claimed(run_id)
        if settled or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def check_copied(stores: Stores, src: str, dst: str, ids: dict[str, str]) -> None:
    """Copy SRC into DST, expect every count and that DST shows what SRC shows; then a second
    copy copies nothing and says so."""
    out = stores.copy(src, dst, "--json")
    assert out.code == 0, (out.stdout, out.stderr)
    report = out.json()
    assert report["problems"] == [] and report["ok"] is True
    assert report["copied"]["runs"] == len(ids) == report["verified"]["runs"]
    assert {k: report["copied"][k] for k in ("tokens", "schedules", "key")} == {
        "tokens": 2, "schedules": 1, "key": 1}
    assert report["verified"] == report["copied"]
    assert report["copied"]["history_events"] > 20 and report["copied"]["log_records"] >= 4
    assert stores.everything(dst, ids) == stores.everything(src, ids)
    inbox = stores.json(dst, "show", ids["suspended"])["inbox"]
    assert [(e["name"], e["data"]) for e in inbox] == [("poke", {"a": 1})]
    again = stores.copy(src, dst)
    assert again.code == 0, again.stderr
    assert f"runs             0 copied, {len(ids)} already there, {len(ids)} verified" in again.stdout
    assert "Nothing to copy: the destination holds all of it already" in again.stdout
    assert again.stderr == ""


def check_works_on(stores: Stores, dst: str, ids: dict[str, str], link: str) -> None:
    """On DST, the link made before the copy resumes its run (through `wfrun serve`), the CLI
    resumes the child's suspension from its parent, and tick wakes the sleeping run."""
    with serving(stores, dst) as base:
        assert post(base, link, {"approved": True}) == 202
        assert settled(dst, ids["suspended"]) == "completed"
    doc = stores.json(dst, "show", ids["suspended"])
    assert doc["output"] == {"approved": {"approved": True}}
    assert [e["type"] for e in doc["history"]].count("resumed") == 1
    resumed = stores.json(dst, "resume", ids["parent"], "--step", "review/approve",
                          "--data", '{"approved": false}')
    assert resumed["status"] == "completed"
    ticked = stores.json(dst, "tick", "--now", "+2h")
    assert ids["sleeping"] in {a["run_id"] for a in ticked["advanced"]}
    assert stores.json(dst, "show", ids["sleeping"])["status"] == "completed"


def test_file_to_file_copies_everything_verified_and_twice_copies_nothing(stores: Stores) -> None:
    src, dst = stores.file(".wfstate"), stores.file("copy")
    ids = stores.populate(src)
    link = stores.json(src, "show", ids["suspended"])["suspended"][0]["resume_url"]
    statuses = {kind: stores.json(src, "show", run_id)["status"] for kind, run_id in ids.items()}
    assert statuses == {"suspended": "suspended", "sleeping": "waiting", "completed": "completed",
                        "failed": "failed", "parent": "suspended", "child": "suspended"}
    check_copied(stores, src, dst, ids)
    check_works_on(stores, dst, ids, link)
    # the source is as it was: its own copy of the link still works there too
    assert stores.json(src, "show", ids["suspended"])["status"] == "suspended"


def test_file_to_postgresql_and_the_old_links_work_there(stores: Stores) -> None:
    src = stores.file(".wfstate")
    ids = stores.populate(src)
    link = stores.json(src, "show", ids["suspended"])["suspended"][0]["resume_url"]
    with _pg.schema() as dst:
        check_copied(stores, src, dst, ids)
        check_works_on(stores, dst, ids, link)


def test_postgresql_to_file_and_the_copy_runs_on(stores: Stores) -> None:
    dst = stores.file("moved")
    with _pg.schema() as src:
        ids = stores.populate(src)
        link = stores.json(src, "show", ids["suspended"])["suspended"][0]["resume_url"]
        check_copied(stores, src, dst, ids)
    check_works_on(stores, dst, ids, link)


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()} if directory.exists() else {}


def test_a_destination_with_another_url_key_is_refused_and_nothing_is_written(
        stores: Stores) -> None:
    src, dst = stores.file(".wfstate"), stores.file("other")
    stores.populate(src)
    stores.json(dst, "start", "approval")  # (its links are signed with a key of its own)
    before = files(stores.root / "other")
    out = stores.copy(src, dst)
    assert out.code == 3 and out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert "URL signing key" in out.stderr and "links signed by either would stop working" \
        in out.stderr and "nothing was copied" in out.stderr
    assert files(stores.root / "other") == before


def test_a_conflicting_run_is_reported_and_left_as_it_is(stores: Stores) -> None:
    src, dst = stores.file(".wfstate"), stores.file("copy")
    ids = stores.populate(src)
    assert stores.copy(src, dst).code == 0
    stores.json(dst, "resume", ids["suspended"], "--data", '{"approved": true}')  # DST moves on
    out = stores.copy(src, dst, "--json")
    assert out.code == 3
    report = out.json()
    assert [(p["kind"], p["run_id"]) for p in report["problems"]] == [
        ("conflict", ids["suspended"])]
    assert f"run {ids['suspended']} exists already in" in out.stderr
    assert "where the copy is at revision" in out.stderr
    assert report["already_there"]["runs"] == len(ids) - 1 == report["verified"]["runs"]
    assert stores.json(dst, "show", ids["suspended"])["status"] == "completed"


def test_runs_being_executed_in_the_source_are_refused_by_name(stores: Stores) -> None:
    src, dst = stores.file(".wfstate"), stores.file("copy")
    ids = stores.populate(src)
    claim = open_store(src).claim(ids["sleeping"])  # as a worker executing it holds it
    assert claim is not None
    try:
        out = stores.copy(src, dst)
    finally:
        claim.release()
    assert out.code == 3 and out.stdout == ""
    assert f"1 run(s) of {src} are being executed right now ({ids['sleeping']})" in out.stderr
    assert "stop the workers" in out.stderr and "tick --watch" in out.stderr
    assert not (stores.root / "copy").exists()
    assert stores.copy(src, dst).code == 0  # once it is released


def test_a_missing_source_or_the_same_store_twice_is_refused(stores: Stores) -> None:
    out = stores.copy(stores.file("nowhere"), stores.file("copy"))
    assert out.code == 4 and "state directory" in out.stderr and "does not exist" in out.stderr
    assert not (stores.root / "nowhere").exists() and not (stores.root / "copy").exists()
    stores.populate(stores.file(".wfstate"))
    same = stores.copy(stores.file(".wfstate"), str(stores.root / "x" / ".." / ".wfstate"))
    assert same.code == 2 and "are the same store" in same.stderr
    usage = stores.copy(stores.file(".wfstate"), "")
    assert usage.code == 2 and usage.stderr.startswith("error: ")


def test_an_unreadable_run_is_reported_and_the_others_are_copied(stores: Stores) -> None:
    """A run whose snapshot file in the source file store was damaged by hand."""
    src, dst = stores.file(".wfstate"), stores.file("copy")
    ids = stores.populate(src)
    snapshot = stores.root / ".wfstate" / "runs" / f"{ids['completed']}.json"
    snapshot.write_text(snapshot.read_text().replace('"completed"', '"complete"', 1))
    out = stores.copy(src, dst, "--json")
    assert out.code == 5
    report = out.json()
    assert [p["kind"] for p in report["problems"]] == ["unreadable"]
    assert str(snapshot) in out.stderr and "(not copied)" in out.stderr
    assert report["copied"]["runs"] == len(ids) - 1 == report["verified"]["runs"]
    assert open_store(dst).run_ids() == sorted(i for k, i in ids.items() if k != "completed")


def test_verification_reports_a_copy_that_does_not_match_field_by_field(stores: Stores) -> None:
    src, dst = stores.file(".wfstate"), stores.file("copy")
    ids = stores.populate(src)
    first = copy_state(src, dst)
    assert first.problems == [] and first.exit_code == 0
    stores.json(dst, "cancel", ids["sleeping"])
    assert open_store(dst).revoke_token("shop", "2026-01-01T00:00:00Z") is not None
    report = CopyReport(src, dst)
    verify(src, dst, Expected(["shop"], ["tickly"], [ids["sleeping"], ids["completed"]],
                              open_store(src).stored_secret_key()), report)
    assert report.exit_code == 5
    messages = [p["message"] for p in report.problems]
    assert messages == [
        f"run {ids['sleeping']} in {dst} does not match the source: its fields 'updated_at', "
        "'status', 'revision', 'steps' differ (status is 'waiting' in the source and "
        "'cancelled' in the copy)",
        f"start token 'shop' in {dst} is not the source's"]
    assert report.verified["runs"] == 1 and report.verified["key"] == 1
