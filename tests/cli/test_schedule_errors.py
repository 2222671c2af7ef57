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
