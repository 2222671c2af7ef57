"""The URL signing key (`keys/url.key`): a damaged one is refused, never used to sign links nor
replaced behind the user's back, and `wfrun doctor` reports it (issue 18, point 8)."""

from __future__ import annotations

import pytest
from conftest import Project

FLOW = """
name: flow
steps:
  - id: approve
    wait: true
"""


@pytest.fixture
def suspended(project: Project) -> Project:
    project.workflow("flow", FLOW)
    out = project.run("start", "flow", "--run-id", "r1")
    assert out.code == 0, out
    assert "token=" in project.run("show", "r1").stdout  # a link, signed with the key
    return project


@pytest.mark.parametrize("size", [0, 1, 31])
def test_a_short_key_is_refused_and_reported(suspended: Project, size: int) -> None:
    key = suspended.state / "keys" / "url.key"
    key.write_bytes(key.read_bytes()[:size])
    for args in (["show", "r1"], ["show", "r1", "--json"], ["pending", "--json"]):
        out = suspended.run(*args)
        assert out.code == 5, (args, out)
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert str(key) in lines[0] and f"has {size} byte(s)" in lines[0]
        assert "delete it" in lines[0]
    assert len(key.read_bytes()) == size, "the key was replaced"

    doctor = suspended.run("doctor", "--json")
    assert doctor.code == 5
    assert [(p["kind"], p["path"]) for p in doctor.json()["problems"]] == [("key", str(key))]

    key.unlink()  # what the message says to do: a new key, new links
    out = suspended.run("show", "r1")
    assert out.code == 0 and "token=" in out.stdout
    assert len(key.read_bytes()) == 32
    assert suspended.run("doctor").code == 0


def test_a_longer_key_is_used_as_it_is(suspended: Project) -> None:
    key = suspended.state / "keys" / "url.key"
    before = suspended.run("show", "r1", "--json").json()["suspended"][0]["resume_url"]
    key.write_bytes(key.read_bytes() + b"more")
    after = suspended.run("show", "r1", "--json").json()["suspended"][0]["resume_url"]
    assert after != before and key.read_bytes().endswith(b"more")
    assert suspended.run("doctor").code == 0
