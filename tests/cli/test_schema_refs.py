"""Issue 18.5: a manifest's schemas resolve only references inside themselves; wfrun never
fetches a `$ref` (no network, no file), and `validate` / `start` refuse one with exit 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from conftest import Project


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL on a listener that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/x.json"


def test_validate_and_start_refuse_a_remote_ref_without_fetching_it(
    project: Project, silent_url: str
) -> None:
    path = project.workflow("remote", f"""
        name: remote
        input_schema: {{$ref: '{silent_url}'}}
        steps:
          - {{id: gate, wait: true}}
    """)
    for args in (("validate", str(path)), ("start", "remote", "--input", '{"a": 1}')):
        out = project.cli(*args, timeout=20)
        assert out.code == 2, (args, out)
        assert str(path) in out.stderr and silent_url in out.stderr
        assert "points outside the schema" in out.stderr and "Traceback" not in out.stderr
    assert project.store().run_ids() == []


def test_a_ref_to_a_file_beside_the_manifest_is_refused_too(project: Project) -> None:
    (project.workflows / "defs.json").write_text('{"type": "object"}')
    project.workflow("filed", """
        name: filed
        steps:
          - id: gate
            wait: true
            resume_schema: {$ref: 'defs.json'}
    """)
    out = project.run("validate", "filed")
    assert out.code == 2
    assert "'defs.json'" in out.stderr and "step" in out.stderr and "resume_schema" in out.stderr


def test_refs_inside_the_schema_work(project: Project) -> None:
    project.workflow("local", """
        name: local
        input_schema:
          $defs:
            user: {type: object, required: [name], properties: {name: {type: string}}}
          type: object
          properties: {user: {$ref: '#/$defs/user'}}
        steps:
          - {id: gate, wait: true}
    """)
    assert project.run("validate", "local").code == 0
    bad = project.run("start", "local", "--input", '{"user": {}}')
    assert bad.code == 2 and '"user.name" (text) is missing' in bad.stderr
    assert project.json("start", "local", "--input", '{"user": {"name": "ann"}}')["status"] == \
        "suspended"


def test_a_ref_to_nothing_in_the_schema_is_refused(project: Project) -> None:
    project.workflow("dangling", """
        name: dangling
        input_schema: {properties: {a: {$ref: '#/$defs/missing'}}}
        steps:
          - {id: gate, wait: true}
    """)
    out = project.run("validate", "dangling")
    assert out.code == 2 and "'#/$defs/missing'" in out.stderr and "points to nothing" in out.stderr


def test_a_manifest_changed_after_start_is_never_fetched_either(
    project: Project, silent_url: str
) -> None:
    path = project.workflow("later", """
        name: later
        steps:
          - id: gate
            wait: true
            resume_schema: {type: object}
    """)
    run_id = project.json("start", "later")["run_id"]
    path.write_text(path.read_text().replace("{type: object}", f"{{$ref: '{silent_url}'}}"))
    out = project.cli("resume", run_id, "--data", "{}", timeout=20)
    assert out.code == 2, out
    assert silent_url in out.stderr and "Traceback" not in out.stderr
    assert project.json("show", run_id)["status"] == "suspended"
