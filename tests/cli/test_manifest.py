"""Issue 2, SPEC §2: finding manifests, their defaults, and every invalid manifest refused by
`validate` and by `start` (exit 2, naming file, step and key) with nothing executed or written.
"""

from __future__ import annotations

import json
import os
import py_compile
import textwrap
from pathlib import Path

import pytest
from conftest import Outcome, Project

ECHO_PY = """
def hello(ctx):
    return {"workflow": ctx.workflow, "step": ctx.step}
"""


def one_line_error(out: Outcome) -> str:
    """The single `error: ...` line a refused command prints on stderr."""
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# -- discovery ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["NAME.yaml", "NAME.yml", "NAME/workflow.yaml"])
def test_a_workflow_is_found_by_name_in_each_layout(project: Project, layout: str) -> None:
    manifest = project.workflows / layout.replace("NAME", "greet")
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text("steps:\n  - id: hello\n")
    module = manifest.with_suffix(".py")  # the .py beside the manifest, with its stem
    module.write_text(ECHO_PY)
    doc = project.json("start", "greet")
    assert doc["status"] == "completed"
    # the name defaults to the stem (of the directory for NAME/workflow.yaml)
    assert doc["workflow"] == "greet"
    assert doc["output"] == {"workflow": "greet", "step": "hello"}
    listed = project.json("workflows")
    assert [(w["name"], w["path"]) for w in listed] == [("greet", str(manifest))]


def test_yaml_is_preferred_over_yml_and_a_missing_name_is_not_found(project: Project) -> None:
    (project.workflows / "w.yaml").write_text("steps: [{id: hello}]\n")
    (project.workflows / "w.yml").write_text("steps: [{id: other}]\n")
    (project.workflows / "w.py").write_text(ECHO_PY + "\ndef other(ctx):\n    return 'yml'\n")
    assert project.json("start", "w")["output"]["step"] == "hello"
    before = project.snapshots()
    out = project.run("start", "nope")
    assert out.code == 4
    line = one_line_error(out)
    assert "nope.yaml" in line and "nope.yml" in line and "workflow.yaml" in line
    assert project.snapshots() == before


def test_a_manifest_path_works_and_its_name_key_wins_over_the_stem(
    project: Project, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = elsewhere / "some-file.yaml"
    manifest.write_text("name: custom-name\nsteps:\n  - id: hello\n")
    (elsewhere / "some-file.py").write_text(ECHO_PY)
    doc = project.json("start", str(manifest))
    assert doc["workflow"] == "custom-name"
    assert doc["output"] == {"workflow": "custom-name", "step": "hello"}
    assert project.json("validate", str(manifest))[0]["ok"] is True


def test_explicit_module_and_handler_and_the_default_handler_name(project: Project) -> None:
    project.workflow("mod", """
        module: code/steps.py
        steps:
          - id: first-step          # handler defaults to first_step
          - id: second
            handler: renamed
        """)
    (project.workflows / "code").mkdir()
    (project.workflows / "code" / "steps.py").write_text(textwrap.dedent("""
        def first_step(ctx):
            return "from first_step"

        def second(ctx):
            raise AssertionError("the handler key must win over the id")

        def renamed(ctx):
            return ctx.steps["first-step"].output + " then renamed"
        """))
    (project.workflows / "mod.py").write_text("raise AssertionError('the default module')\n")
    doc = project.json("start", "mod")
    assert doc["status"] == "completed", doc
    assert doc["output"] == "from first_step then renamed"


def test_workflows_lists_steps_and_kinds(project: Project) -> None:
    project.workflow("kinds", """
        description: three kinds
        steps:
          - id: code
          - {id: gate, wait: true}
          - {id: nap, sleep: 1h}
        """, "def code(ctx):\n    return 1\n")
    rows = project.json("workflows")
    assert rows == [{
        "name": "kinds", "path": str(project.workflows / "kinds.yaml"),
        "description": "three kinds",
        "steps": [{"id": "code", "kind": "code"}, {"id": "gate", "kind": "wait"},
                  {"id": "nap", "kind": "sleep"}],
        "error": None,
    }]
    human = project.run("workflows")
    assert human.code == 0 and "kinds" in human.stdout and "three kinds" in human.stdout


# -- invalid manifests --------------------------------------------------------------------------

GOOD_PY = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").touch()

def a(ctx):
    Path(__file__).with_name("EXECUTED").touch()
    return 1

def b(ctx):
    Path(__file__).with_name("EXECUTED").touch()
    return 2
"""

# case -> (manifest, fragments the message must contain: file is always checked)
INVALID: dict[str, tuple[str, list[str]]] = {
    "unknown-top-key": ("steps: [{id: a}]\nsteeps: []\n", ["key 'steeps'", "unknown key"]),
    "unknown-step-key": ("steps:\n  - id: a\n    need: [b]\n", ["step 'a'", "key 'need'"]),
    "duplicate-id": ("steps: [{id: a}, {id: a}]\n", ["step 'a'", "key 'id'", "duplicate"]),
    "unknown-needs": ("steps:\n  - id: a\n  - id: b\n    needs: [zzz]\n",
                      ["step 'b'", "key 'needs'", "zzz"]),
    "cycle": ("steps:\n  - id: a\n    needs: [b]\n  - id: b\n", ["key 'needs'", "cycle"]),
    "self-need": ("steps:\n  - id: a\n    needs: [a]\n", ["step 'a'", "key 'needs'"]),
    "missing-module": ("module: nowhere.py\nsteps: [{id: a}]\n", ["key 'module'", "nowhere.py"]),
    "module-not-py": ("module: nowhere.txt\nsteps: [{id: a}]\n", ["key 'module'"]),
    "missing-handler": ("steps: [{id: a}, {id: c}]\n", ["step 'c'", "key 'handler'", "'c'"]),
    "handler-not-identifier": ("steps:\n  - id: a\n    handler: 'not a name'\n",
                               ["step 'a'", "key 'handler'"]),
    "input-schema": ("input_schema: {type: nonsense}\nsteps: [{id: a}]\n",
                     ["key 'input_schema'", "invalid JSON Schema"]),
    "resume-schema": ("steps:\n  - id: a\n    wait: true\n    resume_schema: {type: 12}\n",
                      ["step 'a'", "key 'resume_schema'", "invalid JSON Schema"]),
    "suspend-schema": ("steps:\n  - id: a\n    suspend_schema: {required: notalist}\n",
                       ["step 'a'", "key 'suspend_schema'", "invalid JSON Schema"]),
    "output-schema": ("steps:\n  - id: a\n    output_schema: {minimum: high}\n",
                      ["step 'a'", "key 'output_schema'", "invalid JSON Schema"]),
    "schema-not-mapping": ("steps:\n  - id: a\n    output_schema: [1]\n",
                           ["step 'a'", "key 'output_schema'"]),
    "a-list": ("- id: a\n- id: b\n", ["must be a YAML mapping", "a list"]),
    "a-string": ("just text\n", ["must be a YAML mapping"]),
    "empty-file": ("", ["must be a YAML mapping", "nothing"]),
    "malformed-yaml": ("steps: [{id: a}\nname: x\n", ["not valid YAML", "line"]),
    "tab-indent": ("steps:\n\t- id: a\n", ["not valid YAML"]),
    "python-object": ("steps: !!python/object:os.system {}\n", ["not valid YAML"]),
    "python-apply": ("steps:\n  - !!python/object/apply:os.system ['true']\n", ["not valid YAML"]),
    "alias-bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True))
        + "steps: *f\n", ["aliases"]),
    "bad-duration": ("steps:\n  - id: a\n    wait: true\n    timeout: 5 fortnights\n",
                     ["step 'a'", "key 'timeout'"]),
    "bad-sleep": ("steps:\n  - id: a\n    sleep: soon\n", ["step 'a'", "key 'sleep'"]),
    "bad-sleep-until": ("steps:\n  - id: a\n    sleep_until: next tuesday\n",
                        ["step 'a'", "key 'sleep_until'"]),
    "bad-on-timeout": ("steps:\n  - id: a\n    wait: true\n    on_timeout: explode\n",
                       ["step 'a'", "key 'on_timeout'", "explode"]),
    "bad-retry-key": ("steps:\n  - id: a\n    retry: {max_attempts: 2, tries: 3}\n",
                      ["step 'a'", "key 'retry'", "tries"]),
    "bad-retry-attempts": ("steps:\n  - id: a\n    retry: {max_attempts: 0}\n",
                           ["step 'a'", "key 'retry'", "max_attempts"]),
    "bad-retry-delay": ("steps:\n  - id: a\n    retry: {delay: often}\n",
                        ["step 'a'", "key 'retry'"]),
    "bad-id-characters": ("steps:\n  - id: 'a b/c'\n", ["key 'id'", "a b/c"]),
    "missing-id": ("steps:\n  - handler: a\n", ["key 'id'", "step #1"]),
    "bad-name": ("name: Bad Name\nsteps: [{id: a}]\n", ["key 'name'"]),
    "no-steps": ("name: x\nsteps: []\n", ["key 'steps'"]),
    "when-unknown-step": ("steps:\n  - id: a\n  - id: b\n    needs: []\n    when: {a: ok}\n",
                          ["step 'b'", "key 'when'"]),
    "when-bad-actions": ("steps:\n  - id: a\n  - id: b\n    when: {a: [1, 2]}\n",
                         ["step 'b'", "key 'when'"]),
    "when-yaml-boolean": ("steps:\n  - id: a\n  - id: b\n    when: {a: yes}\n",
                          ["step 'b'", "key 'when'", "quote the action"]),
    "duplicate-yaml-key": ("steps:\n  - id: a\n    id: b\n", ["not valid YAML", "line 3",
                                                           "duplicate key 'id'"]),
    "duplicate-top-key": ("steps: [{id: a}]\nsteps: [{id: b}]\n", ["duplicate key 'steps'"]),
    "wait-with-handler": ("steps:\n  - id: a\n    wait: true\n    handler: a\n",
                          ["step 'a'", "key 'handler'"]),
    "wait-and-sleep": ("steps:\n  - id: a\n    wait: true\n    sleep: 1h\n", ["step 'a'"]),
    "wait-not-bool": ("steps:\n  - id: a\n    wait: yes please\n", ["step 'a'", "key 'wait'"]),
    "output-unknown": ("output: zzz\nsteps: [{id: a}]\n", ["key 'output'", "zzz"]),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_manifests_are_refused_by_validate_and_start(project: Project, case: str) -> None:
    manifest, fragments = INVALID[case]
    path = project.workflows / "bad.yaml"
    path.write_text(manifest)
    (project.workflows / "bad.py").write_text(GOOD_PY)
    for args in (["validate", "bad"], ["start", "bad"], ["start", str(path)],
                 ["start", "bad", "--json"]):
        out = project.run(*args)
        assert out.code == 2, (args, out)
        line = one_line_error(out)
        assert str(path) in line, line
        for fragment in fragments:
            assert fragment in line, (fragment, line)
        assert out.stdout == ""
    assert not (project.workflows / "EXECUTED").exists()
    if case != "missing-handler":  # only a missing handler needs the module imported to tell
        assert not (project.workflows / "IMPORTED").exists()
    assert not project.state.exists()  # nothing written: not even the state directory


def test_a_module_that_fails_to_import_is_refused(project: Project) -> None:
    project.workflow("bad", "steps: [{id: a}]\n", "import no_such_module_here\n")
    out = project.run("start", "bad")
    assert out.code == 2
    line = one_line_error(out)
    assert "bad.py" in line and "ModuleNotFoundError" in line
    assert not project.state.exists()


def test_validate_json_reports_each_workflow_and_exits_2_if_one_is_bad(project: Project) -> None:
    project.workflow("good", "steps: [{id: a}, {id: b}]\n", GOOD_PY)
    project.workflow("bad", "steps: [{id: a, color: red}]\n", GOOD_PY)
    out = project.run("validate", "--json")
    assert out.code == 2
    rows = {r["workflow"]: r for r in json.loads(out.stdout)}
    assert rows["good"] == {"workflow": "good", "path": str(project.workflows / "good.yaml"),
                            "ok": True, "error": None, "steps": 2}
    bad = rows["bad"]  # named and placed as a valid one is: its name, its manifest file
    assert bad["path"] == str(project.workflows / "bad.yaml")
    assert bad["ok"] is False and "key 'color'" in bad["error"] and bad["exit_code"] == 2
    ok = project.run("validate", "good")
    assert ok.code == 0 and "ok" in ok.stdout and "good" in ok.stdout
    assert not (project.workflows / "EXECUTED").exists()  # validate runs no step


def test_an_invalid_manifest_is_listed_by_its_name_and_file(project: Project) -> None:
    """validate --json and workflows --json: `workflow`/`name` is the workflow's name (its
    `name:` when it can be read, else the file's stem) and `path` its manifest, valid or not."""
    project.workflow("billing-v2", "name: billing\nsteps: [{id: a, color: red}]\n", GOOD_PY)
    project.workflow("broken", "steps: [\n", GOOD_PY)  # not YAML: the stem
    project.workflow("odd", "name: Not Valid\nsteps: [{id: a}]\n", GOOD_PY)  # not a name
    project.workflow("good", "steps: [{id: a}]\n", GOOD_PY)
    files = {name: str(project.workflows / f"{name}.yaml")
             for name in ("billing-v2", "broken", "odd", "good")}
    expected = {"billing": files["billing-v2"], "broken": files["broken"], "odd": files["odd"],
                "good": files["good"]}
    out = project.run("validate", "--json")
    assert out.code == 2
    rows = json.loads(out.stdout)
    assert {r["workflow"]: r["path"] for r in rows} == expected
    assert [r["ok"] for r in rows] == [False, False, True, False]
    assert all(r["exit_code"] == 2 and r["path"] in r["error"] for r in rows if not r["ok"])
    named = json.loads(project.run("validate", "billing-v2", "--json").stdout)
    assert [(r["workflow"], r["path"]) for r in named] == [("billing", files["billing-v2"])]
    unknown = json.loads(project.run("validate", "nothing", "--json").stdout)
    assert [(r["workflow"], r["path"], r["exit_code"]) for r in unknown] == [("nothing", None, 4)]
    listed = project.json("workflows")
    assert {r["name"]: r["path"] for r in listed} == expected
    assert [r["error"] is None for r in listed] == [False, False, True, False]
    table = project.run("workflows").stdout
    assert "billing (invalid)" in table and "broken (invalid)" in table and "good " in table


def test_validate_with_no_workflows_and_an_unknown_one(project: Project) -> None:
    none = project.run("validate")
    assert none.code == 4 and "no workflows" in none.stderr
    unknown = project.run("validate", "ghost")
    assert unknown.code == 4 and "ghost" in unknown.stderr


def test_a_missing_workflows_directory_is_named_with_what_makes_one(project: Project) -> None:
    project.workflows.rmdir()
    for command in ("validate", "workflows"):
        out = project.run(command)
        assert out.code == 4 and out.stdout == "", (command, out)  # an error for both
        said = out.stderr
        assert f"the workflows directory {project.workflows} does not exist" in said
        assert "wfrun init" in said and "--workflows-dir" in said


def test_workflows_lists_an_invalid_manifest_with_its_error(project: Project) -> None:
    project.workflow("bad", "steps: [{id: a, color: red}]\n")
    rows = project.json("workflows")
    assert rows[0]["name"] == "bad" and "key 'color'" in rows[0]["error"]


def test_anchors_and_merge_keys_are_still_fine(project: Project) -> None:
    project.workflow("anchors", """
        input_schema: &obj {type: object, properties: {n: {type: integer}}}
        steps:
          - id: a
            output_schema:
              <<: *obj
              required: [n]
        """, "def a(ctx):\n    return {'n': ctx.input['n']}\n")
    assert project.json("start", "anchors", "--input", '{"n": 3}')["output"] == {"n": 3}


def test_an_edited_module_runs_its_new_code_even_with_stale_bytecode_beside_it(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python trusts a __pycache__ file by its source's mtime (whole seconds) and size; an edit
    that keeps both must still run the new code, the code whose hash the run records."""
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    project.workflow("w", """
        steps:
          - {id: gate, wait: true}
          - id: after
        """, "def after(ctx):\n    return 'v1'\n")
    module = project.workflows / "w.py"
    compiled = project.json("start", "w")  # imports the module: may leave bytecode for v1
    py_compile.compile(str(module))  # make sure it does
    stat = module.stat()
    module.write_text("def after(ctx):\n    return 'v2'\n")  # same size...
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and same mtime
    doc = project.json("resume", compiled["run_id"])
    assert doc["steps"]["after"]["output"] == "v2"


@pytest.mark.parametrize("output", ["[a]", "{a: 1}", "3"])
def test_an_output_that_is_no_step_name_is_refused_naming_the_key(
        project: Project, output: str) -> None:
    project.workflow("good", "steps: [{id: a}]\n", GOOD_PY)
    project.workflow("odd", f"output: {output}\nsteps: [{{id: a}}]\n", GOOD_PY)
    out = project.run("validate", "odd")
    assert out.code == 2 and "output" in out.stderr and "must name a step" in out.stderr
    assert "Traceback" not in out.stderr
    assert project.run("validate", "good").code == 0  # the other workflows still load
    assert project.run("workflows").code == 0


@pytest.mark.parametrize("interval", ["nan", "inf", "1e10", "0"])
def test_tick_watch_refuses_an_interval_out_of_range(project: Project, interval: str) -> None:
    out = project.run("tick", "--watch", "--interval", interval)
    assert out.code == 2 and "--interval" in out.stderr
    assert not project.state.exists()


def test_a_sleep_until_of_the_wrong_kind_is_refused_in_words_not_a_python_repr(
        project: Project) -> None:
    project.workflow("later", "steps:\n  - id: a\n    sleep_until: [2030-01-01]\n", GOOD_PY)
    out = project.run("validate", "later")
    assert out.code == 2 and "key 'sleep_until'" in out.stderr and "not a list" in out.stderr
    assert "datetime" not in out.stderr
