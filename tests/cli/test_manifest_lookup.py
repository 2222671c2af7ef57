"""How `wfrun start` and `validate` find a manifest and check its handlers: a missing path is
named as such, a workflow is found by its `name:` as `wfrun workflows` lists it, and a handler
that cannot take `ctx` is refused before anything runs."""

from __future__ import annotations

from conftest import Project


def test_a_manifest_path_that_does_not_exist_is_named_as_a_missing_file(project: Project) -> None:
    out = project.run("start", "nope/x.yaml")
    assert out.code == 4
    assert "manifest file nope/x.yaml does not exist" in out.stderr
    assert "x.yaml.yaml" not in out.stderr and "x.yaml.yml" not in out.stderr
    assert not project.state.exists()


def test_a_manifest_file_name_given_from_the_wrong_directory_gets_a_hint(project: Project) -> None:
    project.workflow("hello", "steps:\n  - id: hi\n", "def hi(ctx):\n    return 1\n")
    out = project.run("start", "hello.yaml")  # the file is workflows/hello.yaml, not ./hello.yaml
    assert out.code == 4
    assert "manifest file hello.yaml does not exist" in out.stderr
    assert "did you mean 'wfrun start hello'" in out.stderr


def test_a_directory_path_with_a_workflow_yaml_is_a_manifest_path(project: Project) -> None:
    (project.workflows / "report").mkdir()
    (project.workflows / "report" / "workflow.yaml").write_text("steps:\n  - id: build\n")
    (project.workflows / "report" / "workflow.py").write_text("def build(ctx):\n    return 7\n")
    doc = project.json("start", str(project.workflows / "report"))
    assert (doc["workflow"], doc["status"], doc["output"]) == ("report", "completed", 7)


def test_start_finds_a_workflow_by_the_name_workflows_lists(project: Project) -> None:
    project.workflow("billing-v2", """
        name: billing
        steps:
          - id: charge
    """, "def charge(ctx):\n    return 'charged'\n")
    listed = [row["name"] for row in project.json("workflows")]
    assert listed == ["billing"]
    doc = project.json("start", "billing")
    assert (doc["workflow"], doc["status"], doc["output"]) == ("billing", "completed", "charged")
    assert project.json("start", "billing-v2")["workflow"] == "billing"  # the file name too
    assert project.run("validate", "billing").code == 0
    missing = project.run("start", "billing-v3")
    assert missing.code == 4 and "a manifest with 'name: billing-v3'" in missing.stderr


def test_validate_refuses_names_that_start_cannot_tell_apart(project: Project) -> None:
    project.workflow("a", "name: shared\nsteps:\n  - id: x\n", "def x(ctx):\n    return 1\n")
    project.workflow("b", "name: shared\nsteps:\n  - id: x\n", "def x(ctx):\n    return 1\n")
    project.workflow("c", "name: d\nsteps:\n  - id: x\n", "def x(ctx):\n    return 1\n")
    project.workflow("d", "name: other\nsteps:\n  - id: x\n", "def x(ctx):\n    return 1\n")
    out = project.run("validate")
    assert out.code == 2
    assert "'shared' is also the name of" in out.stderr and "a.yaml" in out.stderr
    assert "'d' is the file name of" in out.stderr and "d.yaml" in out.stderr
    assert "ok      other" in out.stdout  # d.yaml itself is fine: `start d` finds it
    ambiguous = project.run("start", "shared")
    assert ambiguous.code == 2 and "2 manifests are named 'shared'" in ambiguous.stderr


def test_validate_and_start_refuse_a_handler_that_takes_no_ctx(project: Project) -> None:
    project.workflow("noctx", """
        steps:
          - id: first
          - id: second
            handler: later
    """, "def first(ctx):\n    return 1\n\ndef later():\n    return 2\n")
    out = project.run("validate", "noctx")
    assert out.code == 2
    assert "noctx.yaml: step 'second'" in out.stderr
    assert "function later() in" in out.stderr and "noctx.py" in out.stderr
    assert "def later(ctx):" in out.stderr
    started = project.run("start", "noctx")
    assert started.code == 2 and "function later()" in started.stderr
    assert not project.state.exists()  # refused before anything was written


def test_handlers_that_take_ctx_in_any_callable_way_are_accepted(project: Project) -> None:
    project.workflow("shapes", """
        steps:
          - id: plain
          - id: defaults
          - id: star
          - id: instance
    """, """
        def plain(ctx):
            return 1

        def defaults(ctx, extra=2):
            return extra

        def star(*args):
            return len(args)

        class Step:
            def __call__(self, ctx):
                return 4

        instance = Step()
    """)
    assert project.run("validate", "shapes").code == 0
    assert project.json("start", "shapes")["status"] == "completed"


def test_a_handler_that_needs_two_arguments_or_keyword_only_ctx_is_refused(project: Project) -> None:
    project.workflow("two", "steps:\n  - id: a\n", "def a(ctx, other):\n    return 1\n")
    project.workflow("kw", "steps:\n  - id: a\n", "def a(*, ctx):\n    return 1\n")
    for name, shown in (("two", "a(ctx, other)"), ("kw", "a(*, ctx)")):
        out = project.run("validate", name)
        assert out.code == 2 and shown in out.stderr, out.stderr


# -- the workflows directory itself: missing, a file, or missing the manifest a run remembers --


def test_a_workflows_directory_that_is_a_file_is_named_as_a_file(project: Project) -> None:
    wfile = project.root / "wfile"
    wfile.touch()
    listed = project.run("--workflows-dir", str(wfile), "workflows")  # an error, as validate's
    assert listed.code == 4 and listed.stdout == ""
    assert f"the workflows directory {wfile} is a file, not a directory" in listed.stderr
    assert "there is no directory" not in listed.stderr
    for args in (["validate"], ["validate", "foo"], ["start", "foo"]):
        out = project.run("--workflows-dir", str(wfile), *args)
        assert out.code == 4, (args, out)
        assert f"the workflows directory {wfile} is a file, not a directory" in out.stderr, args
        assert "--workflows-dir" in out.stderr and "looked for" not in out.stderr, args
    project.workflow("one", "steps:\n  - id: a\n", "def a(ctx):\n    return 1\n")
    assert project.run("start", "one").code == 0  # (a state directory, for tick)
    ticked = project.run("--workflows-dir", str(wfile), "tick")
    assert ticked.code == 0
    assert f"warning: the workflows directory {wfile} is not a directory: schedules do not " \
        "fire" in ticked.stderr


def test_start_in_a_missing_workflows_directory_says_the_directory_is_missing(
        project: Project) -> None:
    gone = project.root / "nonexistent"
    out = project.run("--workflows-dir", str(gone), "start", "expense-approval")
    assert out.code == 4
    assert out.stderr.startswith(f"error: no workflow 'expense-approval': the workflows "
                                 f"directory {gone} does not exist; ")
    assert "--workflows-dir" in out.stderr and "looked for" not in out.stderr


def test_resume_of_a_run_whose_manifest_was_deleted_names_the_path_it_remembered(
        project: Project) -> None:
    manifest = project.workflow("gone", "steps:\n  - id: a\n  - id: b\n",
                                "def a(ctx):\n    ctx.flow.suspend()\n\n"
                                "def b(ctx):\n    return ctx.steps['a'].resume_data\n")
    assert project.json("start", "gone", "--run-id", "g1")["status"] == "suspended"
    manifest.unlink()
    out = project.run("resume", "g1", "--data", "1")
    assert out.code == 4
    assert (f"run g1's manifest {manifest} (workflow 'gone') is gone, and the workflows "
            f"directory {project.workflows} has no workflow 'gone'") in out.stderr
    assert "restore that file" in out.stderr and "looked for" not in out.stderr
    elsewhere = project.run("--workflows-dir", str(project.root / "nowhere"), "resume", "g1",
                            "--data", "1")
    assert elsewhere.code == 4
    assert (f"run g1's manifest {manifest} (workflow 'gone') is gone, and the workflows "
            f"directory {project.root / 'nowhere'} does not exist") in elsewhere.stderr
