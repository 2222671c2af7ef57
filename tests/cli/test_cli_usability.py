"""Paper cuts of the command line: a state directory that is not there, prune's units, the
printed cancel command, `list`'s page of top-level runs, and output piped to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, Project

GATE = "steps:\n  - id: ask\n    wait: true\n"


# -- a state directory that does not exist (a cron line without `cd`) ---------------------------


@pytest.mark.parametrize("args", [["tick"], ["list"], ["pending"], ["tick", "--json"],
                                  ["list", "--json"], ["pending", "--json"],
                                  ["prune", "--older-than", "30d"],
                                  ["prune", "--older-than", "30d", "--json"],
                                  ["prune", "--older-than", "1d", "--dry-run", "--json"],
                                  ["token", "list"], ["token", "list", "--json"],
                                  ["schedules"], ["schedules", "--json"]])
def test_commands_reading_a_state_directory_that_is_not_there_say_so(
        project: Project, args: list[str]) -> None:
    out = project.run(*args)
    assert out.code == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert f"state directory {project.state} does not exist" in lines[0]
    assert "--state-dir" in lines[0] and "WFRUN_STATE_DIR" in lines[0]
    assert "project directory" in lines[0]
    if "--json" in args:
        json.loads(out.stdout)  # still a document on stdout
    assert not project.state.exists()  # nothing was created


@pytest.mark.parametrize("args", [["cancel", "r1"], ["resume", "r1", "--data", "1"],
                                  ["send", "r1", "go"], ["logs", "r1"], ["retry", "r1"]])
def test_commands_naming_a_run_in_a_state_directory_that_is_not_there_say_so(
        project: Project, args: list[str]) -> None:
    out = project.run(*args)
    assert out.code == 4, out
    assert f"no run r1: the state directory {project.state} does not exist" in out.stderr
    assert not project.state.exists()  # nothing was created


def test_schedules_lists_the_manifests_schedules_and_says_the_state_directory_is_not_there(
        project: Project) -> None:
    project.workflow("hourly", "steps:\n  - id: a\nschedule:\n  every: 1h\n",
                     "def a(ctx):\n    return 1\n")
    out = project.run("schedules", "--json")
    assert out.code == 0, out.stderr
    assert [(row["workflow"], row["every"], row["last_run"]) for row in out.json()] == [
        ("hourly", "1h", None)]
    assert f"state directory {project.state} does not exist" in out.stderr
    assert not project.state.exists()


def test_a_cron_tick_without_cd_names_the_directory_it_looked_in(project: Project) -> None:
    elsewhere = project.root / "home"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "wfrun", "tick"], capture_output=True,
                          text=True, timeout=60, cwd=elsewhere,
                          env={k: v for k, v in os.environ.items() if k != "WFRUN_STATE_DIR"})
    assert proc.returncode == 0 and proc.stdout == ""
    assert f"state directory {elsewhere / '.wfstate'} does not exist" in proc.stderr
    assert not (elsewhere / ".wfstate").exists()


def test_show_in_a_state_directory_that_is_not_there_says_so(project: Project) -> None:
    out = project.run("show", "r1")
    assert out.code == 4
    assert "no run r1" in out.stderr and f"state directory {project.state} does not exist" \
        in out.stderr
    assert not project.state.exists()


def test_an_existing_state_directory_is_quiet_as_before(project: Project) -> None:
    project.workflow("gate", GATE)
    project.run("start", "gate", "--run-id", "g1")
    for args in (["tick"], ["pending"], ["list"], ["prune", "--older-than", "1d"],
                 ["token", "list"], ["schedules"]):
        assert "does not exist" not in project.run(*args).stderr


# -- prune: a duration that could mean days needs a unit -------------------------------------------


@pytest.mark.parametrize("value", ["30", "30.5", " 7 "])
def test_prune_refuses_a_bare_number(project: Project, value: str) -> None:
    project.workflow("gate", GATE)
    project.run("start", "gate", "--run-id", "g1")
    project.run("cancel", "g1")
    before = project.snapshots()
    out = project.run("prune", "--older-than", value, "--dry-run")
    assert out.code == 2
    number = value.strip()
    assert f"--older-than {number}: give a unit, e.g. {number}d" in out.stderr
    assert out.stdout == ""
    assert project.snapshots() == before


def test_prune_takes_a_duration_with_a_unit(project: Project) -> None:
    project.workflow("gate", GATE)
    project.run("start", "gate", "--run-id", "g1")
    project.run("cancel", "g1")
    assert project.json("prune", "--older-than", "30d", "--dry-run")["runs"] == []
    assert [r["run_id"] for r in project.json("prune", "--older-than", "0s", "--dry-run")["runs"]] \
        == ["g1"]


# -- the printed commands work with --state-dir ----------------------------------------------------


def test_the_printed_cancel_command_names_the_state_directory(project: Project) -> None:
    project.workflow("gate", GATE)
    for command in ("start", "show"):
        args = ["gate", "--run-id", "g1"] if command == "start" else ["g1"]
        out = project.run(command, *args)
        lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                 for line in out.stdout.splitlines() if line.startswith("    ")
                 and ":" in line}
        assert lines["resume"].startswith(f"wfrun --state-dir {project.state} resume g1")
        assert lines["cancel"] == f"wfrun --state-dir {project.state} cancel g1", out.stdout
    # the printed command works, from anywhere (the workflows directory is not needed)
    words = lines["cancel"].split()
    proc = subprocess.run([sys.executable, "-m", "wfrun", *words[1:]], capture_output=True,
                          text=True, timeout=60, cwd=project.root / "workflows")
    assert proc.returncode == 0, proc.stderr
    assert project.json("show", "g1")["status"] == "cancelled"


def test_without_state_dir_the_cancel_command_is_plain(project: Project) -> None:
    project.workflow("gate", GATE)
    proc = subprocess.run([sys.executable, "-m", "wfrun", "start", "gate", "--run-id", "g1"],
                          capture_output=True, text=True, timeout=60, cwd=project.root,
                          env={k: v for k, v in os.environ.items() if k != "WFRUN_STATE_DIR"})
    assert proc.returncode == 0, proc.stderr
    assert "    cancel: wfrun cancel g1\n" in proc.stdout


# -- list: top-level runs, a page of 20 for people ------------------------------------------------


def _batch(project: Project) -> None:
    project.workflow("item", "steps:\n  - id: work\n", "def work(ctx):\n    return ctx.input\n")
    project.workflow("batch", """
        steps:
          - id: split
          - id: each
            foreach: split
            workflow: item
    """, "def split(ctx):\n    return [1, 2, 3]\n")


def test_list_shows_top_level_runs_and_child_runs_on_request(project: Project) -> None:
    _batch(project)
    assert project.json("start", "batch", "--run-id", "b1")["status"] == "completed"
    assert [r["run_id"] for r in project.json("list")] == ["b1"]
    human = project.run("list")
    assert "b1" in human.stdout and "b1--" not in human.stdout and "more" not in human.stdout
    everything = [r["run_id"] for r in project.json("list", "--children")]
    assert len(everything) == 4 and "b1" in everything
    assert sum("b1--each" in line for line in project.run("list", "--children").stdout
               .splitlines()) == 3
    assert [r["workflow"] for r in project.json("list", "--children", "--workflow", "item")] \
        == ["item"] * 3


def test_list_shows_people_the_20_newest_and_says_how_many_more(project: Project) -> None:
    project.workflow("gate", GATE)
    ids = [f"r{n:02d}" for n in range(23)]
    for run_id in ids:
        project.run("start", "gate", "--run-id", run_id)
    newest_first = [r["run_id"] for r in project.json("list")]  # --json: every run
    assert sorted(newest_first) == ids and len(newest_first) == 23
    human = project.run("list").stdout.splitlines()
    shown = [line.split()[0] for line in human[1:-1]]
    assert shown == newest_first[:20]
    assert human[-1] == "… 3 more; use --limit N or --all"
    assert len(project.run("list", "--all").stdout.splitlines()) == 24  # header and 23
    limited = project.run("list", "--limit", "21").stdout.splitlines()
    assert limited[-1] == "… 2 more; use --limit N or --all" and len(limited) == 23
    assert [r["run_id"] for r in project.json("list", "--limit", "2")] == newest_first[:2]
    assert len(project.json("list", "--all")) == 23
    both = project.run("list", "--all", "--limit", "3")
    assert both.code == 2 and "--limit and --all" in both.stderr


# -- output for people when stdout is not a terminal ----------------------------------------------


def test_piped_output_has_no_padding_and_no_wrapped_values(project: Project) -> None:
    long_description = "Charge the card, " * 12
    project.workflow("billing", f"""
        description: {long_description.strip()}
        steps:
          - id: charge-the-customer-card
          - id: ask
            wait: true
    """, "def charge_the_customer_card(ctx):\n"
         "    return {'receipt': 'x' * 50, 'lines': list(range(5))}\n")
    project.workflow("gate", GATE)
    env = {"COLUMNS": "80"}  # the width rich assumes when no terminal tells it one
    assert project.cli("start", "gate", "--run-id", "g1", env=env).code == 0
    started = project.cli("start", "billing", "--run-id", "b1", env=env)
    assert started.code == 0, started.stderr
    outputs = {"start": started.stdout}
    for args in (["show", "b1"], ["list"], ["workflows"], ["pending"]):
        out = project.cli(*args, env=env)
        assert out.code == 0, out.stderr
        outputs[args[0]] = out.stdout
    for name, text in outputs.items():
        padded = [line for line in text.splitlines() if line != line.rstrip()]
        assert padded == [], (name, padded)
    receipt = '{"receipt": "' + "x" * 46
    for name in ("start", "show"):
        row = next(line for line in outputs[name].splitlines() if "charge-the-customer-card" in line)
        assert receipt in row, outputs[name]  # the JSON cell is on its row, whole
    assert long_description.strip() in outputs["workflows"]  # the description on one line


@pytest.mark.parametrize("base", ["javascript:alert(1)", "notaurl", "https://"])
def test_a_base_url_that_is_no_http_url_is_refused_before_anything_is_written(
        project: Project, monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    project.workflow("one", "steps:\n  - id: a\n", "def a(ctx):\n    return 1\n")
    monkeypatch.setenv("WFRUN_BASE_URL", base)
    out = project.run("start", "one")
    assert out.code == 2 and "WFRUN_BASE_URL" in out.stderr and "https://" in out.stderr
    assert not project.state.exists()


@pytest.mark.parametrize(("now", "said"), [("+1x", "'+1x' is not +DURATION"),
                                           ("yesterday", "'yesterday' is not an ISO-8601")])
def test_a_bad_now_is_quoted_as_typed(project: Project, now: str, said: str) -> None:
    out = project.run("tick", "--now", now)
    assert out.code == 2 and said in out.stderr, out.stderr
    assert not project.state.exists()


def test_tick_with_a_state_directory_but_no_workflows_directory_warns(project: Project) -> None:
    project.workflow("one", "steps:\n  - id: a\n", "def a(ctx):\n    return 1\n")
    assert project.run("start", "one").code == 0
    gone = project.root / "elsewhere"
    out = project.run("--workflows-dir", str(gone), "tick")
    assert out.code == 0 and f"no workflows directory {gone}" in out.stderr
    assert "schedules do not fire" in out.stderr


def test_tick_without_a_workflows_directory_says_due_runs_still_continue(
        project: Project) -> None:
    """Each run remembers its manifest's path: the warning says what really happens to them."""
    project.workflow("nap", "steps:\n  - {id: a, sleep: 1h}\n  - id: b\n",
                     "def b(ctx):\n    return 2\n")
    assert project.run("start", "nap", "--run-id", "n1").code == 0
    out = project.run("--workflows-dir", str(project.root / "elsewhere"), "tick", "--now", "+2h")
    assert out.code == 0, out.stderr
    assert out.stdout.split() == ["n1", "a", "sleep", "->", "completed"]
    [warning] = out.stderr.splitlines()
    assert "schedules do not fire; due runs continue with the manifests they were started " \
        "from" in warning
    assert "cannot be continued" not in warning


# -- the exit codes docs/cli.md gives tick are the ones it uses (SPEC §5: for every command) ----


def _tick_exit_codes() -> dict[str, str]:
    """docs/cli.md's exit-code table: code -> what it means for tick."""
    table = (REPO / "docs" / "cli.md").read_text().split("## Exit codes", 1)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ")]
    return {code.strip(): meaning.strip() for code, meaning in rows[1:]}


def test_tick_on_a_state_directory_that_is_a_file_exits_5_as_docs_cli_md_says(
        project: Project) -> None:
    afile = project.root / "afile"
    afile.write_text("")
    out = project.run("--state-dir", str(afile), "tick")
    assert out.code == 5 and f"state directory {afile} is not a directory" in out.stderr
    assert _tick_exit_codes()["5"] not in ("", "–", "-")
    assert "state directory is a file" in _tick_exit_codes()["5"]


@pytest.mark.parametrize(("args", "env", "said", "documented"), [
    (["tick", "--now", "yesterday"], {}, "--now: 'yesterday'", "`--now`"),
    (["tick", "--limit", "0"], {}, "'--limit': 0", "`--limit`"),
    (["tick", "--limit", "many"], {}, "'--limit': 'many'", "`--limit`"),
    (["tick", "--workers", "0"], {}, "'--workers': 0", "`--workers`"),
    (["tick", "--watch", "--interval", "0"], {}, "'--interval': 0.0", "`--interval`"),
    (["tick", "--watch", "--interval", "nan"], {}, "--interval: nan", "`--interval`"),
    (["tick", "--interval", "5"], {}, "--interval is the wait between ticks of --watch",
     "without `--watch`"),
    (["tick", "--bogus"], {}, "No such option: --bogus", "unknown option"),
    (["tick", "extra"], {}, "unexpected extra argument", "extra argument"),
    (["--store", "mysql://db/x", "tick"], {}, "no store for", "no store wfrun knows"),
    # (the project's --state-dir names another store)
    (["--store", "file:elsewhere", "tick"], {}, "name different stores", "another store"),
    (["tick"], {"WFRUN_BASE_URL": "ftp://example.com"}, "WFRUN_BASE_URL 'ftp://example.com'",
     "`WFRUN_BASE_URL`"),
])
def test_tick_exits_2_for_what_docs_cli_md_lists(project: Project, args: list[str],
                                                  env: dict[str, str], said: str,
                                                  documented: str) -> None:
    out = project.cli(*args, env=env)
    assert out.code == 2, out.stderr
    assert out.stderr.startswith("error: ") and said in out.stderr and out.stdout == ""
    assert documented in _tick_exit_codes()["2"]
