"""A step module that cannot be imported (it raises, calls sys.exit(), raises KeyboardInterrupt)
is a manifest error: exit 2, one line naming the module and what it raised."""

from __future__ import annotations

import pytest
from conftest import Outcome, Project

MANIFEST = "steps: [{id: a}]\n"

CASES = {
    "exit-no-code": ("import sys\nsys.exit()\n", ["SystemExit (sys.exit())", "line 2"]),
    "exit-0": ("import sys\n\nsys.exit(0)\n", ["SystemExit (sys.exit(0))", "line 3"]),
    "exit-3": ("import sys\nsys.exit(3)\n", ["SystemExit (sys.exit(3))"]),
    "raise-systemexit": ("raise SystemExit('bye')\n", ["SystemExit (sys.exit('bye'))", "line 1"]),
    "keyboard-interrupt": ("raise KeyboardInterrupt\n", ["KeyboardInterrupt", "line 1"]),
    "value-error-two-lines": ("raise ValueError('first\\nsecond')\n",
                              ["ValueError: first second", "line 1"]),
    "syntax-error": ("def a(ctx):\n    return (\n", ["SyntaxError", "line 2"]),
}


def _one_line_error(out: Outcome, module: str) -> str:
    assert out.code == 2, (out.code, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert module in lines[0] and "importing the step module failed" in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "start"])
def test_a_module_that_raises_at_import_is_a_manifest_error(project: Project, case: str,
                                                           command: str) -> None:
    source, fragments = CASES[case]
    project.workflow("bad", MANIFEST, source + "\ndef a(ctx):\n    return 1\n")
    out = project.run(command, "bad")
    line = _one_line_error(out, str(project.workflows / "bad.py"))
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert out.stdout == ""
    assert not project.state.exists()  # nothing written


@pytest.mark.parametrize("case", ["exit-0", "keyboard-interrupt"])
def test_in_a_real_process_too(project: Project, case: str) -> None:
    source, fragments = CASES[case]
    project.workflow("bad", MANIFEST, source)
    for command in ("validate", "start"):
        line = _one_line_error(project.cli(command, "bad"), "bad.py")
        assert fragments[0] in line
    out = project.cli("validate", "--json")
    assert out.code == 2 and '"ok": false' in out.stdout and "SystemExit" not in out.stderr


def test_validate_reports_the_other_workflows_too(project: Project) -> None:
    project.workflow("good", MANIFEST, "def a(ctx):\n    return 1\n")
    project.workflow("bad", MANIFEST, "import sys\nsys.exit(0)\n")
    out = project.run("validate")
    assert out.code == 2
    assert "ok      good" in out.stdout
    assert "bad.py" in out.stderr and "SystemExit" in out.stderr


@pytest.mark.parametrize("broken", ["import sys\nsys.exit(0)\n", "def b(ctx):\n    return 1\n",
                                    "def a(:\n"])
def test_a_run_whose_code_broke_is_refused_by_resume_and_tick_and_left_as_it_was(
        project: Project, broken: str) -> None:
    project.workflow("later", "steps: [{id: gate, wait: true, timeout: 1h, on_timeout: resume},"
                              " {id: a}]\n", "def a(ctx):\n    return 1\n")
    run_id = project.json("start", "later")["run_id"]
    (project.workflows / "later.py").write_text(broken)
    before = project.snapshots()
    out = project.run("resume", run_id, "--data", '{"ok": true}')  # as start would: exit 2
    assert out.code == 2 and "Traceback" not in out.stderr, (out.code, out.stdout, out.stderr)
    assert "later.py" in out.stderr and out.stderr.count("\n") == 1
    ticked = project.run("tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert ticked.code == 1 and "later.py" in ticked.json()["errors"][0]["message"]
    changed = {k for k, v in project.snapshots().items()
               if before.get(k) != v and not k.startswith("cache/")}
    assert changed == set(), changed  # the data was not taken, the deadline did not fire
    (project.workflows / "later.py").write_text("def a(ctx):\n    return 1\n")  # fixed
    assert project.json("resume", run_id, "--data", '{"ok": true}')["status"] == "completed"


KID = "name: kid\nsteps:\n  - {id: approve, wait: true, timeout: 1h, on_timeout: resume}\n" \
      "  - id: done\n"
PAR = "name: par\nsteps:\n  - {id: review, workflow: kid}\n  - id: after\n"


def test_a_child_whose_parent_step_was_renamed_is_not_resumed_until_it_is_back(
        project: Project) -> None:
    # as a removed step of the run itself: refused (exit 2), nothing changed (SPEC §6); the
    # parent could never continue from a step it no longer has
    project.workflow("kid", KID, "def done(ctx):\n    return 'kid done'\n")
    project.workflow("par", PAR, "def after(ctx):\n    return 'after'\n")
    project.json("start", "par", "--run-id", "A")
    project.workflow("par", PAR.replace("id: review", "id: review2"))
    before = project.snapshots()
    out = project.run("resume", "A", "--step", "review/approve", "--data", "{}")
    assert out.code == 2 and "step 'review' of run A no longer exists" in out.stderr, out
    assert project.snapshots() == before
    project.workflow("par", PAR, "def after(ctx):\n    return 'after'\n")  # back
    assert project.json("resume", "A", "--step", "review/approve",
                        "--data", "{}")["status"] == "completed"


def test_a_parent_whose_code_broke_is_not_continued_by_its_child_but_told_later(
        project: Project) -> None:
    project.workflow("kid", KID, "def done(ctx):\n    return 'kid done'\n")
    project.workflow("par", PAR, "def after(ctx):\n    return 'after'\n")
    project.json("start", "par", "--run-id", "A")
    (project.workflows / "par.py").write_text("raise RuntimeError('broken')\n")
    out = project.run("resume", "A", "--step", "review/approve", "--data", "{}")
    assert out.code == 0 and "Traceback" not in out.stderr, (out.stdout, out.stderr)
    assert "parent run A of run A--review was not updated" in out.stderr  # kept for later
    assert "par.py" in out.stderr
    parent = project.json("show", "A")
    assert parent["status"] not in ("failed", "completed"), parent["status"]
    assert "review2" not in parent["steps"] or parent["steps"]["review2"]["status"] == "pending"
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").code == 1  # still not told
    project.workflow("par", PAR, "def after(ctx):\n    return 'after'\n")  # fixed
    project.json("tick", "--now", "2099-01-01T00:00:00Z")
    assert project.json("show", "A")["status"] == "completed"
