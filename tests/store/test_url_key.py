"""The URL signing key (`keys/url.key`): a damaged one is refused, never used to sign links nor
replaced behind the user's back, and `wfrun doctor` reports it (issue 18, point 8); a temporary
key a kill left while the key was made is harmless, and doctor says so without failing."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from conftest import Project

FLOW = """
name: flow
steps:
  - id: approve
    wait: true
"""


@pytest.fixture
def suspended(project: Project) -> Project:
    project.workflow("flow", FLOW)
    out = project.run("start", "flow", "--run-id", "r1")
    assert out.code == 0, out
    assert "token=" in project.run("show", "r1").stdout  # a link, signed with the key
    return project


@pytest.mark.parametrize("size", [0, 1, 31])
def test_a_short_key_is_refused_and_reported(suspended: Project, size: int) -> None:
    key = suspended.state / "keys" / "url.key"
    key.write_bytes(key.read_bytes()[:size])
    for args in (["show", "r1"], ["show", "r1", "--json"], ["pending", "--json"]):
        out = suspended.run(*args)
        assert out.code == 5, (args, out)
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert str(key) in lines[0] and f"has {size} byte(s)" in lines[0]
        assert "delete it" in lines[0]
    assert len(key.read_bytes()) == size, "the key was replaced"

    doctor = suspended.run("doctor", "--json")
    assert doctor.code == 5
    assert [(p["kind"], p["path"]) for p in doctor.json()["problems"]] == [("key", str(key))]

    key.unlink()  # what the message says to do: a new key, new links
    out = suspended.run("show", "r1")
    assert out.code == 0 and "token=" in out.stdout
    assert len(key.read_bytes()) == 32
    assert suspended.run("doctor").code == 0


RERUN = """
name: poll
steps:
  - id: job
"""
RERUN_CODE = """
def job(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1h", None, 1)  # asks for its links: the key is read
    return ctx.run.runs
"""


def test_a_short_key_stops_commands_that_execute_steps_before_they_change_anything(
        project: Project) -> None:
    """A step that asks for its links would fail on the key as if it raised itself: the
    command is refused first (exit 5), and no run is created, claimed or failed."""
    project.workflow("poll", RERUN, RERUN_CODE)
    assert project.run("start", "poll", "--run-id", "r1").code == 0
    key = project.state / "keys" / "url.key"
    key.write_bytes(b"short")
    before = (project.state / "runs" / "r1.json").read_bytes()

    out = project.run("start", "poll", "--run-id", "r2")
    assert out.code == 5 and "url.key has 5 byte(s)" in out.stderr, out
    assert not (project.state / "runs" / "r2.json").exists()
    out = project.run("resume", "r1", "--data", "{}")
    assert out.code == 5 and "url.key has 5 byte(s)" in out.stderr, out
    tick = project.run("tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert tick.code == 1, tick
    assert [e["run_id"] for e in tick.json()["errors"]] == ["r1"]
    assert "url.key has 5 byte(s)" in tick.json()["errors"][0]["message"]
    assert (project.state / "runs" / "r1.json").read_bytes() == before

    key.unlink()  # what the message says: the run goes on, with links of a new key
    tick = project.run("tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert tick.code == 0, tick
    assert project.run("show", "r1", "--json").json()["status"] == "completed"


def test_a_run_that_makes_no_link_makes_no_key(project: Project) -> None:
    """The check before step code reads a key, never makes one: a store a workflow without
    links ran on can still adopt another store's key (`wfrun state copy`)."""
    project.workflow("plain", "steps:\n  - id: only\n", "def only(ctx):\n    return 1\n")
    assert project.run("start", "plain").code == 0
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").code == 0
    assert not (project.state / "keys" / "url.key").exists()


def test_a_longer_key_is_used_as_it_is(suspended: Project) -> None:
    key = suspended.state / "keys" / "url.key"
    before = suspended.run("show", "r1", "--json").json()["suspended"][0]["resume_url"]
    key.write_bytes(key.read_bytes() + b"more")
    after = suspended.run("show", "r1", "--json").json()["suspended"][0]["resume_url"]
    assert after != before and key.read_bytes().endswith(b"more")
    assert suspended.run("doctor").code == 0


def test_a_kill_while_the_first_start_makes_the_key_leaves_a_harmless_leftover(
        project: Project) -> None:
    # the very first start makes keys/url.key: killed at each file operation in turn, it may
    # leave the key's temporary file (durable_write's own, or the one linked into place, then
    # beside the key); doctor warns of it with the rm to run, and exits 0
    project.workflow("flow", FLOW)
    shapes = set()
    for n in range(1, 60):
        shutil.rmtree(project.state, ignore_errors=True)
        started = project.cli("start", "flow", "--run-id", "r1", env={"WFRUN_FAULT": f"kill@{n}"})
        if started.code == 0:
            break
        assert started.code == 137, started
        keys = project.state / "keys"
        leftovers = sorted(p for p in keys.glob("*") if ".tmp-" in p.name) if keys.is_dir() else []
        if not leftovers:
            continue
        shapes.add((leftovers[0].name.startswith("."), (keys / "url.key").exists()))
        doctor = project.run("doctor")
        assert doctor.code == 0, (n, doctor)
        assert doctor.stdout.strip().endswith(f"no problems; {len(leftovers)} harmless warning(s)")
        assert doctor.stderr.splitlines() == [
            f"warning: {p} is a temporary file left by a process killed while it made the URL "
            f"signing key; it is never read and is harmless: remove it with 'rm {p}'"
            for p in leftovers], (n, doctor.stderr)
        doc = project.run("doctor", "--json").json()
        assert doc["ok"] is True and doc["problems"] == []
        assert [(d["kind"], d["path"]) for d in doc["notes"]] == [
            ("temp", str(p)) for p in leftovers]
        # the next start signs its links with one key, and the leftover stays harmless
        assert project.run("start", "flow", "--run-id", "r2").code == 0
        assert "token=" in project.run("show", "r2").stdout
        assert project.run("doctor").code == 0
        for path in leftovers:
            path.unlink()  # what the warning says to do
        assert project.run("doctor").stderr == ""
    else:
        pytest.fail("the start never completed")
    # each shape: durable_write's temporary name, the key's before and after its link
    assert shapes == {(True, False), (False, False), (False, True)}, shapes


def test_every_leftover_of_an_interrupted_write_is_harmless(suspended: Project) -> None:
    keys = suspended.state / "keys"
    leftover = keys / f"url.key.tmp-{os.urandom(6).hex()}"
    os.link(keys / "url.key", leftover)
    other = keys / "tokens.json.tmp-0123456789ab"  # another write's: never read either
    other.write_bytes(b"{}")
    other.chmod(0o600)
    doctor = suspended.run("doctor", "--json")
    assert doctor.code == 0
    doc = doctor.json()
    assert doc["ok"] is True and doc["problems"] == []
    assert sorted((p["kind"], p["path"]) for p in doc["notes"]) == [
        ("temp", str(other)), ("temp", str(leftover))]
    human = suspended.run("doctor")
    assert human.code == 0 and re.search(r"no problems; 2 harmless warning\(s\)", human.stdout)
    assert f"warning: {leftover} is a temporary file" in human.stderr
    assert f"warning: {other} is a temporary file" in human.stderr
    assert f"'rm {other}'" in human.stderr
