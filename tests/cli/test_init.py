"""`wfrun init`: a workflow, its module and a passing test from a template; never overwrites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project

TEMPLATES = ("hello", "approval", "polling")


def wfrun(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`wfrun ARGS` as a user types it in a project directory (default ./workflows)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    return subprocess.run([sys.executable, "-m", "wfrun", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env)


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFRUN_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={cwd / '.pytest-tmp'}", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=180, env=env)


def test_every_template_validates_and_its_test_passes(tmp_path: Path) -> None:
    for template in TEMPLATES:
        out = wfrun(tmp_path, "init", f"my-{template}", "--template", template)
        assert out.returncode == 0, out.stderr
        assert f"Created workflow 'my-{template}' from the {template} template:" in out.stdout
        assert f"  wfrun validate my-{template}\n" in out.stdout
        assert f"  python -m pytest tests/test_my_{template}.py\n" in out.stdout
        for path in (f"workflows/my-{template}.yaml", f"workflows/my-{template}.py",
                     f"tests/test_my_{template}.py"):
            assert (tmp_path / path).is_file(), path
    assert (tmp_path / ".gitignore").read_text() == ".wfstate/\n"  # created once, not repeated
    validate = wfrun(tmp_path, "validate")
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.count("ok ") == 3
    tests = run_pytest(tmp_path, "tests")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "7 passed" in tests.stdout
    # The printed start command works as printed.
    started = wfrun(tmp_path, "start", "my-hello", "--input", '{"who": "Ada"}', "--json")
    assert started.returncode == 0, started.stderr
    assert '"said": "Hello, Ada!"' in started.stdout


def test_a_generated_test_can_fail(tmp_path: Path) -> None:
    """The generated tests really run the workflow: break the code and they fail."""
    assert wfrun(tmp_path, "init", "greeter").returncode == 0
    module = tmp_path / "workflows" / "greeter.py"
    module.write_text(module.read_text().replace('f"Hello, {who}!"', 'f"Hi, {who}!"'))
    tests = run_pytest(tmp_path, "tests/test_greeter.py")
    assert tests.returncode == 1
    assert "2 failed" in tests.stdout


def test_init_with_another_workflows_dir(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    (project.root / ".gitignore").write_text("*.pyc")  # no newline at the end
    out = project.run("--workflows-dir", "flows", "init", "review", "--template", "approval",
                      "--tests-dir", "checks", "--json")
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["files"] == ["flows/review.yaml", "flows/review.py", "checks/test_review.py"]
    assert doc["gitignore"] == "added"
    assert doc["next"][0] == "wfrun --workflows-dir flows validate review"
    assert (project.root / ".gitignore").read_text() == "*.pyc\n.wfstate/\n"
    test_text = (project.root / "checks" / "test_review.py").read_text()
    assert 'pytestmark = pytest.mark.wfrun(workflows_dir="../flows")' in test_text
    tests = run_pytest(project.root, "checks")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout


def test_init_refuses_to_overwrite_and_bad_names(project: Project,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_taken.py").write_text("# mine\n")
    before = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    out = project.run("init", "taken")
    assert out.code == 3
    assert "test_taken.py already exists" in out.stderr
    (project.workflows / "other.yml").write_text("steps: []\n")
    assert project.run("init", "other").code == 3
    # a name another manifest states in `name:` is taken too ('validate foo' would then fail)
    (project.workflows / "named.yaml").write_text("name: foo\nsteps: []\n")
    named = project.run("init", "foo")
    assert named.code == 3
    assert "named.yaml already has 'name: foo'" in named.stderr
    for bad in ("Bad", "_x", "a b", "x" * 65, "../up"):
        result = project.run("init", bad)
        assert result.code == 2, bad
        assert "invalid workflow name" in result.stderr
    wrong = project.run("init", "fine", "--template", "nope")
    assert wrong.code == 2
    assert "hello, approval, polling" in wrong.stderr
    after = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    del after[project.workflows / "other.yml"], after[project.workflows / "named.yaml"]
    assert after == before  # nothing written, not even .gitignore


def test_the_readme_shows_a_test_init_really_writes() -> None:
    from conftest import REPO

    from wfrun import _templates

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your workflows", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    generated = _templates.render(_templates.APPROVAL.test, "refund-check")
    assert snippet in generated
