"""wfrun.testing: the harness on a fake clock, and the pytest plugin's `wfrun_harness` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.testing import DEFAULT_START, Harness

APPROVAL = """
    name: approval
    steps:
      - id: ask
        wait: true
        timeout: 2d
        on_timeout: cancel
        actions: [approved]
        resume_schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
      - id: done
"""
APPROVAL_PY = """
def done(ctx):
    print("done with", ctx.steps["ask"].output)
    return ctx.steps["ask"].output
"""
POLL = """
    name: poll
    steps: [{id: poll}]
"""
POLL_PY = """
def poll(ctx):
    ctx.log.info("poll %d", ctx.run.runs)
    if ctx.run.runs < 3:
        ctx.flow.rerun("5m", {"seen": ctx.run.runs})
    return ctx.run.runs
"""

EACH = """
    name: each
    steps:
      - id: make
      - id: each
        foreach: make
"""
EACH_PY = """
def make(ctx):
    print("making")
    return ["a", "b"]

def each(ctx):
    print("item", ctx.item)
    return ctx.index
"""


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    for name, manifest, module in (("approval", APPROVAL, APPROVAL_PY), ("poll", POLL, POLL_PY),
                                   ("each", EACH, EACH_PY)):
        (workflows / f"{name}.yaml").write_text(textwrap.dedent(manifest))
        (workflows / f"{name}.py").write_text(module)
    return Harness(workflows, tmp_path / ".wfstate")


def test_suspend_then_timeout_on_the_fake_clock(harness: Harness) -> None:
    doc = harness.start("approval")
    assert doc["status"] == "suspended"
    assert doc["created_at"] == "2026-01-05T09:00:00.000Z"  # DEFAULT_START, not the wall clock
    assert doc["suspended"][0]["deadline"] == "2026-01-07T09:00:00.000Z"
    assert harness.advance("47h59m") == {"advanced": [], "errors": []}
    assert harness.show(doc["run_id"])["status"] == "suspended"
    report = harness.advance("1m")
    assert report["advanced"] == [{"run_id": doc["run_id"], "step": "ask", "reason": "timeout",
                                   "status": "cancelled"}]
    assert [e["on_timeout"] for e in harness.history(doc["run_id"], "timed_out")] == ["cancel"]
    with pytest.raises(ConflictError):
        harness.resume(doc["run_id"], {"ok": True})


def test_advance_to_due_says_when_nothing_is_due(harness: Harness) -> None:
    with pytest.raises(UsageError, match=r"nothing is due: no run has a timer or a deadline, "
                                         r"and no schedule fires$"):
        harness.advance_to_due()
    run_id = harness.start("approval")["run_id"]
    harness.cancel(run_id)
    with pytest.raises(UsageError, match=f"{run_id}'\\): nothing is due: the run and its child "
                                         "runs have no timer"):
        harness.advance_to_due(run_id)
    assert harness.start("approval", None)["input"] is None  # as --input null
    assert harness.start("approval")["input"] == {}  # as without --input


def test_resume_checks_data_and_continues(harness: Harness) -> None:
    run_id = harness.start("approval")["run_id"]
    assert [p["step"] for p in harness.pending()] == ["ask"]
    with pytest.raises(UsageError):
        harness.resume(run_id, {"ok": "yes"})
    done = harness.resume(run_id, {"ok": True}, step="ask", action="approved")
    assert done["status"] == "completed"
    assert done["output"] == {"ok": True}
    assert done["steps"]["ask"]["action"] == "approved"
    assert harness.output(run_id) == "done with {'ok': True}\n"
    assert harness.pending() == []
    assert [r["status"] for r in harness.runs()] == ["completed"]


def test_reruns_fire_with_advance_to_due_without_sleeping(harness: Harness) -> None:
    doc = harness.start("poll")
    assert doc["waiting"][0]["due_at"] == "2026-01-05T09:05:00.000Z"
    assert harness.advance("1m", tick=False) == {"advanced": [], "errors": []}
    assert harness.advance_to_due(doc["run_id"])["advanced"][0]["status"] == "waiting"
    assert harness.now.isoformat() == "2026-01-05T09:05:00+00:00"
    harness.advance_to_due()
    final = harness.show(doc["run_id"])
    assert (final["status"], final["output"]) == ("completed", 3)
    assert [r["text"] for r in harness.logs(doc["run_id"], "poll")] == ["poll 1", "poll 2", "poll 3"]
    with pytest.raises(UsageError, match="nothing is due"):
        harness.advance_to_due(doc["run_id"])


def test_cancel_set_time_and_errors(harness: Harness) -> None:
    run_id = harness.start("poll")["run_id"]
    assert harness.cancel(run_id, "not needed")["status"] == "cancelled"
    harness.set_time("2026-02-01T00:00:00Z")
    assert harness.tick() == {"advanced": [], "errors": []}
    with pytest.raises(NotFoundError):
        harness.show("no-such-run")
    with pytest.raises(NotFoundError):
        harness.start("no-such-workflow")
    with pytest.raises(NotFoundError):
        harness.logs(run_id, "nope")
    assert DEFAULT_START in repr(Harness(".", "x")).replace(".000Z", "Z")


def test_logs_of_a_foreach_step_and_of_one_iteration(harness: Harness) -> None:
    run_id = harness.start("each")["run_id"]
    assert [r["step"] for r in harness.logs(run_id)] == ["make", "each[0]", "each[1]"]
    assert harness.output(run_id, "each") == "item a\nitem b\n"  # its iterations' records
    assert harness.output(run_id, "each[1]") == "item b\n"
    with pytest.raises(NotFoundError, match=r"each\[2\].*2 iterations \(each\[0\] to each\[1\]\)"):
        harness.logs(run_id, "each[2]")
    with pytest.raises(NotFoundError, match=r"'make'.*no iterations"):
        harness.output(run_id, "make[0]")


def test_misuse_raises_usage_errors_as_the_command_exits_2(harness: Harness) -> None:
    run_id = harness.start("approval")["run_id"]
    with pytest.raises(UsageError, match="'two days' is not a duration"):
        harness.advance("two days")
    for backwards in ("-1h", -5, timedelta(seconds=-1)):
        with pytest.raises(UsageError, match="only moves forward"):
            harness.advance(backwards)
    with pytest.raises(UsageError, match="only moves forward"):
        harness.set_time("2026-01-05T08:59:59Z")
    with pytest.raises(UsageError, match="not an ISO-8601 time"):
        harness.set_time("garbage")
    harness.set_time(harness.now)  # staying put is fine
    assert harness.now == datetime(2026, 1, 5, 9, tzinfo=UTC)
    with pytest.raises(UsageError, match="data is not JSON: Object of type set"):
        harness.resume(run_id, {1, 2})
    with pytest.raises(UsageError, match="NaN"):
        harness.resume(run_id, float("nan"))
    with pytest.raises(UsageError, match="lone surrogate"):
        harness.send(run_id, "ev", "\udcff")
    with pytest.raises(UsageError, match="input is not JSON: Object of type set"):
        harness.start("poll", {1, 2})
    with pytest.raises(UsageError, match="input is not acceptable JSON"):
        harness.start("poll", {"n": float("inf")})
    assert [r["run_id"] for r in harness.runs()] == [run_id]  # nothing was started
    assert harness.show(run_id)["status"] == "suspended"  # nor resumed
    # what JSON makes of it, as from the command: {1: ...} has key "1"
    assert harness.start("poll", {1: (2, 3)})["input"] == {"1": [2, 3]}


def test_the_harness_state_works_with_the_cli(harness: Harness) -> None:
    """The same files as the command: a run started in a test can be resumed by `wfrun`."""
    doc = harness.start("approval")
    command = doc["suspended"][0]["resume_command"].replace("'{\"ok\": true}'", "'{\"ok\": false}'")
    assert command.startswith(f"wfrun --state-dir {harness.state_dir} resume ")
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", "--workflows-dir", harness.workflows_dir,
         *command.split()[1:3], "resume", doc["run_id"], "--data", '{"ok": false}'],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert harness.show(doc["run_id"])["output"] == {"ok": False}


def pytest_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess in `directory` (the plugin loads from its entry point)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFRUN_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={directory / '.pytest-tmp'}", *args],
                          cwd=directory, capture_output=True, text=True, timeout=120, env=env)


def test_the_fixture_finds_the_project_workflows(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "approval.yaml").write_text(textwrap.dedent(APPROVAL))
    (tmp_path / "workflows" / "approval.py").write_text(APPROVAL_PY)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_flow.py").write_text(textwrap.dedent("""
        import pytest

        def test_times_out(wfrun_harness):
            run = wfrun_harness.start("approval")
            wfrun_harness.advance("2d")
            assert wfrun_harness.show(run["run_id"])["status"] == "cancelled"

        @pytest.mark.wfrun(start="2030-06-01T12:00:00Z")
        def test_marker_sets_the_start(wfrun_harness):
            assert wfrun_harness.start("approval")["created_at"] == "2030-06-01T12:00:00.000Z"

        def test_fails_for_real(wfrun_harness):
            run = wfrun_harness.start("approval")
            assert run["status"] == "completed"
    """))
    proc = pytest_in(tmp_path, "tests/test_flow.py")
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "assert 'suspended' == 'completed'" in proc.stdout


def test_the_marker_keywords_add_up_and_an_unknown_one_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "approval.yaml").write_text(textwrap.dedent(APPROVAL))
    (tmp_path / "flows" / "approval.py").write_text(APPROVAL_PY)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_marks.py").write_text(textwrap.dedent("""
        import pytest

        pytestmark = pytest.mark.wfrun(workflows_dir="../flows")

        @pytest.mark.wfrun(start="2030-06-01T12:00:00Z")
        def test_module_dir_and_test_start(wfrun_harness):
            assert wfrun_harness.start("approval")["created_at"] == "2030-06-01T12:00:00.000Z"

        @pytest.mark.wfrun(workflow_dir="elsewhere")
        def test_typo(wfrun_harness):
            pass
    """))
    proc = pytest_in(tmp_path, "tests/test_marks.py")
    assert "1 passed, 1 error" in proc.stdout, proc.stdout + proc.stderr
    assert ("@pytest.mark.wfrun(...) has unknown keyword 'workflow_dir'; it takes "
            "workflows_dir=..., start=... and schedules=...") in proc.stdout


def test_a_bad_marker_value_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_values.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.wfrun(start="not a time")
        def test_start(wfrun_harness):
            pass

        @pytest.mark.wfrun(schedules="nightly")
        def test_schedules(wfrun_harness):
            pass
    """))
    proc = pytest_in(tmp_path, "tests/test_values.py")
    assert "2 errors" in proc.stdout, proc.stdout + proc.stderr
    assert ("wfrun_harness: start: 'not a time' is not an ISO-8601 time (use e.g. "
            "2026-12-01T09:00:00Z)") in proc.stdout
    assert "wfrun_harness: schedules='nightly': give True, False or a list" in proc.stdout
    assert "Traceback" not in proc.stdout and "_harness.py" not in proc.stdout, proc.stdout


def test_the_plugin_changes_nothing_for_other_projects(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(textwrap.dedent("""
        import sys

        def test_plain():
            assert "wfrun.engine" not in sys.modules  # the plugin loaded no engine

        def test_the_fixture_is_offered(request):
            assert request.config.pluginmanager.hasplugin("wfrun")
    """))
    proc = pytest_in(tmp_path)
    assert "2 passed" in proc.stdout, proc.stdout + proc.stderr
    disabled = pytest_in(tmp_path, "-p", "no:wfrun")
    assert "1 failed, 1 passed" in disabled.stdout, disabled.stdout


def test_the_harness_imports_no_cli_libraries(tmp_path: Path) -> None:
    code = ("import sys, wfrun.testing\n"
            "h = wfrun.testing.Harness('workflows', 'state')\n"
            "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
