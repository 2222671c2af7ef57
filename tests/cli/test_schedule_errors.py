"""`wfrun schedules` and `wfrun tick` with scheduled manifests that cannot fire (SPEC §11,
docs/schedules.md): each is listed as a row with its `error`, never left out."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Outcome, Project
from typer.testing import CliRunner

from wfrun.cli import app_for

ONLY = "def only(ctx):\n    return 1\n"


def run(project: Project, *args: str) -> Outcome:
    """`wfrun ARGS` in this process, as the `wfrun` script runs it."""
    argv = [*project.base_args(), *args]
    result = CliRunner().invoke(app_for(argv), argv)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def scheduled(project: Project, file: str, schedule: str, name: str | None = None) -> str:
    """workflows/FILE.yaml with `schedule: SCHEDULE` (and `name: NAME`); its path."""
    named = f"name: {name}\n" if name else ""
    path = project.workflow(file, f"{named}schedule: {schedule}\nsteps:\n  - id: only\n", ONLY)
    return str(path)


BROKEN = [
    ("{every: 0m}", "must be a whole number of seconds"),
    ("{cron: '0 9 * * *', every: 15m}", "needs either 'cron' or 'every'"),
    ("{every: 1h, overlap: never}", "overlap: must be one of"),
    ("{every: 1h, catchup: some}", "catchup: must be one of"),
    ("{every: 1h, start: now}", "unknown key 'start'"),
    ("{cron: '61 9 * * *'}", "is not a valid cron expression"),
    ("{cron: '0 9 * * *', timezone: Mars/Olympus}", "is not a known IANA time zone"),
]


@pytest.mark.parametrize(("schedule", "words"), BROKEN)
def test_schedules_lists_a_schedule_that_cannot_be_evaluated_with_its_error(
        project: Project, schedule: str, words: str) -> None:
    good = scheduled(project, "beat", "{every: 15m}")
    bad = scheduled(project, "bad-file", schedule, name="bad")  # listed by its name:
    listed = run(project, "schedules", "--json", "--now", "2026-03-02T09:00:30Z")
    assert listed.code == 2, listed  # a manifest error's code, as docs/schedules.md says
    rows: list[dict[str, Any]] = listed.json()
    assert [(r["workflow"], r["path"]) for r in rows] == [("bad", bad), ("beat", good)]
    broken, fine = rows
    assert broken["error"].startswith(f"{bad}: key 'schedule': ") and words in broken["error"]
    assert broken["next_fire"] is None and fine["error"] is None and fine["next_fire"]
    assert set(broken) == set(fine)  # one shape for every row
    assert listed.stderr.count(words) == 1, listed.stderr  # said once, on stderr too
    human = run(project, "schedules", "--now", "2026-03-02T09:00:30Z")
    assert human.code == 2 and human.stderr == listed.stderr
    line = next(line for line in human.stdout.splitlines() if line.startswith("bad "))
    assert "error" in line and "(on stderr)" in line, human.stdout
    assert any(line.startswith("beat ") for line in human.stdout.splitlines()), human.stdout


def test_a_scheduled_manifest_that_is_no_yaml_is_listed_by_its_file_stem(
        project: Project) -> None:
    path = project.workflow("daily", "schedule: {every: 1h}\nsteps: [\n", ONLY)
    listed = run(project, "schedules", "--json")
    assert listed.code == 2
    [row] = listed.json()
    assert (row["workflow"], row["path"]) == ("daily", str(path))
    assert "not valid YAML" in row["error"] and "cannot fire until this is fixed" in row["error"]
    assert (row["cron"], row["every"], row["paused"]) == (None, None, False)


# -- two scheduled manifests of one name ---------------------------------------------------------

def two_of_one_name(project: Project) -> tuple[str, str]:
    """workflows/dup1.yaml and dup2.yaml, both `name: dup` with a schedule (every 1h and 2h),
    beside workflows/beat.yaml (every 15m); the two paths."""
    scheduled(project, "beat", "{every: 15m}")
    return (scheduled(project, "dup1", "{every: 1h}", name="dup"),
            scheduled(project, "dup2", "{every: 2h}", name="dup"))


def test_schedules_lists_two_manifests_of_one_name_as_errors(project: Project) -> None:
    first, second = two_of_one_name(project)
    listed = run(project, "schedules", "--json", "--now", "2027-01-01T00:00:10Z")
    assert listed.code == 2, listed  # as validate and start refuse them
    rows = listed.json()
    assert [(r["workflow"], r["path"], r["every"]) for r in rows] == [
        ("beat", str(project.workflows / "beat.yaml"), "15m"), ("dup", first, "1h"),
        ("dup", second, "2h")]
    assert rows[0]["error"] is None
    for row in rows[1:]:
        assert row["error"].startswith(f"2 manifests are named 'dup' ({first}, {second}); ")
        assert row["next_fire"] is None and row["last_run"] is None
    assert listed.stderr.count("manifests are named 'dup'") == 1, listed.stderr
    human = run(project, "schedules", "--now", "2027-01-01T00:00:10Z")
    assert human.code == 2 and human.stderr == listed.stderr
    assert [line.split()[3] for line in human.stdout.splitlines()[1:]] == [
        "2027-01-01T00:00:00Z", "error", "error"], human.stdout
    by_path = run(project, "schedules", "pause", first)  # the state is not that manifest's
    assert by_path.code == 2 and "manifests are named 'dup'" in by_path.stderr
    assert project.store().schedule_state("dup")[0] is None
    for verb in ("pause", "unpause"):  # by name: what to do is what works, renaming one
        by_name = run(project, "schedules", verb, "dup")
        assert by_name.code == 2 and "manifests are named 'dup'" in by_name.stderr
        assert "rename all but one" in by_name.stderr and "by its path" not in by_name.stderr
    assert project.store().schedule_state("dup")[0] is None


def test_tick_fires_neither_of_two_manifests_of_one_name_and_says_why(project: Project) -> None:
    first, second = two_of_one_name(project)
    for now in ("2027-01-01T00:00:10Z", "2027-01-01T02:00:10Z"):
        out = run(project, "tick", "--now", now, "--json")
        assert out.code == 1, out  # as for any scheduled manifest that cannot fire
        report = out.json()
        assert [a["run_id"] for a in report["advanced"]] == [f"sched-beat-{now[:4]}0101T"
                                                             f"{now[11:13]}00Z"]
        [error] = report["errors"]
        assert (error["run_id"], error["workflow"]) == (None, "dup")
        assert error["message"].startswith(f"2 manifests are named 'dup' ({first}, {second}); ")
        assert out.stderr.count("manifests are named 'dup'") == 1, out.stderr
    assert project.store().schedule_state("dup")[0] is None  # no state they would share
    assert [r["run_id"] for r in run(project, "list", "--all", "--json").json()] == [
        "sched-beat-20270101T0200Z", "sched-beat-20270101T0000Z"]


def test_tick_names_an_invalid_scheduled_manifest_as_schedules_does(project: Project) -> None:
    scheduled(project, "nightly-v2", "{every: 1h, overlap: never}", name="nightly")
    out = run(project, "tick", "--now", "2027-01-01T00:00:10Z", "--json")
    assert out.code == 1
    [error] = out.json()["errors"]
    [row] = run(project, "schedules", "--json").json()
    assert error == {"run_id": None, "workflow": "nightly", "message": row["error"]}
