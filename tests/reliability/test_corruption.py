"""Corruption: a damaged snapshot is reported (path and reason), never modified, and every other
run keeps working. `wfrun doctor` finds it, and leftover temporary files, torn history and log
lines and runs missing from the due index, without changing a byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ._relutil import Lab, Result, copy_state, future, load, temp_files


def _flip_in_string(raw: bytes) -> bytes:
    """Change one letter inside a JSON string value: still valid JSON, but not the same run."""
    at = raw.index(b'"run_id": "bad"') + len(b'"run_id": "')
    assert raw[at:at + 1] == b"b"
    return raw[:at] + b"c" + raw[at + 1:]


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _empty(raw: bytes) -> bytes:
    return b""


def _future_version(raw: bytes) -> bytes:
    assert b'"schema_version": 1,' in raw
    return raw.replace(b'"schema_version": 1,', b'"schema_version": 99,', 1)


def _resealed(change: Callable[[dict[str, Any]], object]) -> Callable[[bytes], bytes]:
    """Change the run's data, then write a checksum that matches: damage only a reader that
    checks the shape of the values can see (a hand edit, another program)."""
    def damage(raw: bytes) -> bytes:
        envelope = json.loads(raw)
        change(envelope["run"])
        del envelope["checksum"]
        text = json.dumps(envelope, indent=1).encode()  # schema_version, revision, due, run
        cut = text.index(b"\n", text.index(b'"revision"')) + 1
        digest = hashlib.sha256(text).hexdigest()
        return text[:cut] + f' "checksum": "sha256:{digest}",\n'.encode() + text[cut:]
    return damage


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flipped-byte": (_flip_in_string, "checksum"),
    "truncated": (_truncate, "not valid JSON"),
    "empty": (_empty, "empty"),
    "unknown-schema-version": (_future_version, "schema_version 99"),
    # the checksum matches, a value has the wrong type (issue 18, point 9)
    "pause-a-number": (_resealed(lambda r: r["steps"]["approve"].update(pause=5)),
                       "steps.approve.pause is 5, expected an object or null"),
    "created-at-a-number": (_resealed(lambda r: r.update(created_at=12)),
                            "created_at is 12, expected a string"),
    "steps-a-list": (_resealed(lambda r: r.update(steps=[])), "steps is [], expected an object"),
    "a-step-a-number": (_resealed(lambda r: r["steps"].update(a=5)), "steps.a is 5"),
    "status-unknown": (_resealed(lambda r: r.update(status="paused")),
                       'status is "paused", expected a run status'),
    "runs-a-string": (_resealed(lambda r: r["steps"]["a"].update(runs="1")),
                      'steps.a.runs is "1", expected an integer'),
    "revision-a-bool": (_resealed(lambda r: r.update(revision=True)), "revision is true"),
    "error-a-string": (_resealed(lambda r: r.update(error="boom")), 'error is "boom"'),
    "due-at-a-number": (_resealed(lambda r: r["steps"]["approve"]["pause"].update(due_at=1)),
                        "steps.approve.pause.due_at is 1"),
    "pause-without-kind": (_resealed(lambda r: r["steps"]["approve"]["pause"].pop("kind")),
                           "steps.approve.pause.kind is missing"),
    "nonces-not-strings": (_resealed(lambda r: r["steps"]["a"].update(nonces=[1])),
                           "steps.a.nonces[0] is 1"),
    "iteration-a-number": (_resealed(lambda r: r["steps"]["a"].update(iterations=[7])),
                           "steps.a.iterations[0] is 7"),
    "parent-without-run-id": (_resealed(lambda r: r.update(parent={"step": "x"})),
                              "parent.run_id is missing"),
    "workflow-missing": (_resealed(lambda r: r.pop("workflow")), "workflow is missing"),
    "inbox-entry-without-kind": (_resealed(lambda r: r.update(inbox=[{"step": "a"}])),
                                 "inbox[0].kind is missing"),
}


def _state(lab: Lab) -> Path:
    state = lab.root / "state"
    for run_id in ("bad", "good"):
        lab.ok(state, "start", "flow", "--run-id", run_id)
    lab.ok(state, "start", "poll", "--run-id", "poller")
    return state


def _one_error(out: Result, *fragments: str) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corrupt_snapshot_is_reported_untouched_and_isolated(lab: Lab, name: str) -> None:
    state = _state(lab)
    path = state / "runs" / "bad.json"
    damage, reason = CORRUPTIONS[name]
    path.write_bytes(damage(path.read_bytes()))
    corrupt = path.read_bytes()

    for args in (["show", "bad"], ["show", "bad", "--json"], ["resume", "bad", "--data", "{}"],
                 ["cancel", "bad"]):
        out = lab.cmd(state, *args)
        assert out.rc == 5, (args, out)
        assert out.stdout == ""
        _one_error(out, str(path), reason, "restore")

    listed = lab.cmd(state, "list", "--json")
    assert listed.rc == 5
    assert sorted(row["run_id"] for row in listed.json()) == ["good", "poller"]
    _one_error(listed, str(path), reason)
    waiting = lab.cmd(state, "pending", "--json")
    assert waiting.rc == 5
    assert [row["run_id"] for row in waiting.json()] == ["good"]
    _one_error(waiting, str(path), reason)

    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5, doctor
    report = doctor.json()
    assert report["runs"] == 3 and not report["ok"]
    assert [(p["path"], p["kind"]) for p in report["problems"]] == [(str(path), "snapshot")]
    assert reason in report["problems"][0]["reason"]

    # the other runs keep working: resume one, and tick past every deadline (the bad one too)
    assert lab.ok(state, "resume", "good", "--data", json.dumps({"token": "x"})).rc == 0
    tick = lab.cmd(state, "tick", "--now", future(days=4000))
    assert tick.rc == 1, tick  # one run could not be read: listed on stderr, the rest advanced
    _one_error(tick, str(path), reason)
    assert load(state, "good").status == "completed"
    assert load(state, "poller").status == "completed"
    assert path.read_bytes() == corrupt, "the corrupt snapshot was modified"
    assert sorted(p.name for p in (state / "runs").glob("bad*")) == [
        "bad.history.jsonl", "bad.json"]


def test_doctor_on_a_healthy_and_on_a_missing_state_dir(lab: Lab) -> None:
    missing = lab.root / "nothing-here"
    out = lab.cmd(missing, "doctor", "--json")
    assert out.rc == 0 and out.json()["runs"] == 0 and out.json()["ok"]
    assert not missing.exists(), "doctor created the state directory"

    state = _state(lab)
    out = lab.cmd(state, "doctor")
    assert out.rc == 0, out
    assert "checked 3 run(s)" in out.stdout and "no problems" in out.stdout
    assert lab.cmd(state, "doctor", "--json").json() == {
        "state_dir": str(state), "runs": 3, "ok": True, "problems": [], "notes": []}


def test_doctor_notes_the_history_and_log_of_a_snapshot_moved_away(lab: Lab) -> None:
    state = _state(lab)
    runs = state / "runs"
    history, log = runs / "good.history.jsonl", runs / "good.log.jsonl"
    log.write_bytes(b'{"at": "2026-01-01T00:00:00Z", "stream": "stdout", "text": "hi"}\n')
    log.chmod(0o600)  # as wfrun makes it
    (runs / "good.json").rename(lab.root / "good.json")  # moved away by hand
    lab.ok(state, "list")  # drops the run-index entry of the run it no longer finds

    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 0 and doctor.json()["ok"] and doctor.json()["runs"] == 2, doctor
    assert {(n["kind"], n["path"]) for n in doctor.json()["notes"]} == {
        ("orphan", str(history)), ("orphan", str(log))}
    human = lab.cmd(state, "doctor")
    assert human.rc == 0 and "no problems; 2 harmless warning(s)" in human.stdout, human
    assert (f"warning: {history} is the history of run good, whose snapshot {runs / 'good.json'} "
            "is missing") in human.stderr and f"'rm {history}'" in human.stderr
    assert f"warning: {log} is the log of run good" in human.stderr and f"'rm {log}'" in human.stderr
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == before


def test_doctor_finds_temp_files_torn_history_and_logs_and_missing_index(lab: Lab) -> None:
    state = _state(lab)
    # a real crash between writing a snapshot's temporary file and renaming it
    for n in range(1, 20):
        crashed = lab.root / f"crash{n}"
        copy_state(state, crashed)
        out = lab.cmd(crashed, "cancel", "good", env={"WFRUN_FAULT": f"kill@{n}"})
        if [t for t in temp_files(crashed) if t.parent.name == "runs"]:
            break
    else:
        raise AssertionError("no crash point left a temporary file")
    assert out.rc == 137
    leftover = next(t for t in temp_files(crashed) if t.parent.name == "runs")
    listed = lab.cmd(crashed, "list", "--json")
    assert listed.rc == 0 and len(listed.json()) == 3  # never read as a run

    history = crashed / "runs" / "poller.history.jsonl"
    with history.open("ab") as fh:
        fh.write(b'{"at": "2026-01-01T00:00:00Z", "type": "lo')  # torn by a power cut
    log = crashed / "runs" / "poller.log.jsonl"  # what a step printed, torn the same way
    log.write_bytes(b'{"at": "2026-01-01T00:00:00Z", "stream": "stdout", "text": "hi"}\n{"at": ')
    log.chmod(0o600)  # as wfrun makes it
    entry = next((crashed / "due").rglob("*~bad"))
    entry.unlink()  # the suspended run's due entry, gone: tick would never time it out

    before = {p: p.read_bytes() for p in crashed.rglob("*") if p.is_file()}
    doctor = lab.cmd(crashed, "doctor", "--json")
    assert doctor.rc == 5, doctor
    found = {(p["kind"], p["path"]) for p in doctor.json()["problems"]}
    assert found == {("history", str(history)), ("log", str(log)),
                     ("index", str(crashed / "runs" / "bad.json"))}, found
    # the leftover is never read: harmless, a note with how to remove it
    assert [(p["kind"], p["path"]) for p in doctor.json()["notes"]] == [("temp", str(leftover))]
    human = lab.cmd(crashed, "doctor")
    assert human.rc == 5 and str(history) in human.stdout
    assert f"warning: {leftover} is " in human.stderr and f"'rm {leftover}'" in human.stderr
    assert len(human.error_lines()) == 1 and "error: 3 problem(s)" in human.stderr
    assert "3 problem(s); 1 harmless warning(s)" in human.stdout
    missed = next(line for line in human.stdout.splitlines() if "due-index" in line)
    assert missed.startswith(f"snapshot {crashed / 'runs' / 'bad.json'} is of a suspended run "
                             "whose due-index entry ") and "run bad" not in missed, missed
    after = {p: p.read_bytes() for p in crashed.rglob("*") if p.is_file()}
    assert after == before, "doctor changed the state directory"
