"""Bad input: whatever arrives in --input, --data or a run id, wfrun answers exit 2 or 4 with one
line on stderr, never a traceback, and no byte of .wfstate/ changes. Hostile YAML manifests are
refused with exit 2 and no code of theirs runs.

Hypothesis drives the CLI in-process (fast); the named nasty cases run as separate processes,
where the interpreter's real recursion limit and memory apply.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Outcome, Project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._relutil import Lab, Result

STRICT = """
name: strict
input_schema:
  type: object
  required: [magic]
  additionalProperties: false
  properties: {magic: {const: open-sesame-7f3a}}
steps:
  - id: gate
    wait: true
    resume_schema:
      type: object
      required: [magic]
      additionalProperties: false
      properties: {magic: {const: open-sesame-7f3a}}
  - id: after
"""
STRICT_PY = "def after(ctx):\n    return 'done'\n"
GOOD_INPUT = '{"magic": "open-sesame-7f3a"}'
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
VALID_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")  # SPEC §4, not starting with '-'


def _strict_project(project: Project) -> Project:
    project.workflow("strict", STRICT, STRICT_PY)
    out = project.run("start", "strict", "--run-id", "r1", "--input", GOOD_INPUT)
    assert out.code == 0, out
    return project


def _refused(out: Outcome | Result, codes: tuple[int, ...] = (2,)) -> str:
    code = out.code if isinstance(out, Outcome) else out.rc
    assert code in codes, (code, out.stdout[:300], out.stderr[:500])
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[:1000]
    return lines[0]


def _surrogate_text(raw: bytes) -> str:
    """What Python hands a program for these argv bytes."""
    return raw.decode("utf-8", "surrogateescape")


@pytest.fixture
def strict(project: Project) -> Project:
    return _strict_project(project)


@FUZZ
@given(raw=st.binary(max_size=300), via=st.sampled_from(["arg", "file", "stdin"]),
       command=st.sampled_from(["start", "resume"]))
def test_arbitrary_bytes_as_input_or_data(strict: Project, tmp_path: Path, raw: bytes, via: str,
                                          command: str) -> None:
    before = strict.snapshots()
    stdin = None
    if via == "arg":
        value = _surrogate_text(raw)
    elif via == "file":
        payload = tmp_path / "payload.bin"
        payload.write_bytes(raw)
        value = f"@{payload}"
    else:
        value, stdin = "-", raw
    if command == "start":
        out = strict.run("start", "strict", f"--input={value}", input=stdin)  # type: ignore[arg-type]
    else:
        out = strict.run("resume", "r1", f"--data={value}", input=stdin)  # type: ignore[arg-type]
    _refused(out)
    assert strict.snapshots() == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=30,
)


@FUZZ
@given(value=json_values, command=st.sampled_from(["start", "resume"]))
def test_valid_json_that_breaks_the_schema(strict: Project, value: object, command: str) -> None:
    before = strict.snapshots()
    text = json.dumps(value)
    if command == "start":
        out = strict.run("start", "strict", f"--input={text}")
    else:
        out = strict.run("resume", "r1", f"--data={text}")
    _refused(out)
    assert strict.snapshots() == before


@FUZZ
@given(run_id=st.text(max_size=80) | st.sampled_from(
    ["../x", "..", "a/b", "a\x00b", "a\nb", "x" * 300, "ｒｕｎ", "run\u200b", "r1 ", "r1\r", "ｒ1",
     "", " ", "-", "--", "-r", "%2e%2e", "con", "r\u0131"]),
    command=st.sampled_from(["show", "resume", "cancel", "start"]))
def test_arbitrary_run_ids(strict: Project, run_id: str, command: str) -> None:
    if run_id == "r1" or (command == "start" and VALID_ID.fullmatch(run_id)):
        return  # a real run, or a valid new id that start would rightly create
    before = strict.snapshots()
    if command == "start":
        out = strict.run("start", "strict", "--input", GOOD_INPUT, "--run-id", run_id)
    elif command == "resume":
        out = strict.run("resume", "--data", GOOD_INPUT, "--", run_id)
    else:
        out = strict.run(command, "--", run_id)
    line = _refused(out, (4,) if VALID_ID.fullmatch(run_id) else (2,))
    assert "\x00" not in line
    assert strict.snapshots() == before


NASTY = {
    "nested-10000-arrays": "[" * 10_000 + "]" * 10_000,
    "nested-10000-objects": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "nested-10000-in-magic": '{"magic": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "integer-5000-digits": "9" * 5_000,
    "integer-5000-digits-in-object": '{"magic": ' + "7" * 5_000 + "}",
    "nan": '{"magic": NaN}',
    "infinity": "Infinity",
    "minus-infinity": "[-Infinity]",
    "float-overflow": '{"magic": 1e400}',  # valid JSON; no float holds it
    "minus-float-overflow": "[-1E+400]",
    "duplicate-keys": '{"magic": "open-sesame-7f3a", "magic": "x"}',
    "bom": "\ufeff" + GOOD_INPUT,
    "trailing-garbage": GOOD_INPUT + " x",
    "lone-surrogate-escape": '{"magic": "\\ud800"}',
    "over-1-mib": '{"magic": "' + "x" * (1024 * 1024) + '"}',
    "empty": "",
}


@pytest.fixture
def strict_lab(lab: Lab) -> tuple[Lab, Path]:
    (lab.workflows / "strict.yaml").write_text(STRICT)
    (lab.workflows / "strict.py").write_text(STRICT_PY)
    state = lab.root / "state"
    lab.ok(state, "start", "strict", "--run-id", "r1", "--input", GOOD_INPUT)
    return lab, state


def _files(state: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("case", NASTY)
@pytest.mark.parametrize("command", ["start", "resume"])
def test_nasty_payloads_in_a_real_process(strict_lab: tuple[Lab, Path], case: str,
                                          command: str) -> None:
    lab, state = strict_lab
    payload = lab.root / "payload.json"
    payload.write_text(NASTY[case])
    before = _files(state)
    option = "--input" if command == "start" else "--data"
    head = ["start", "strict"] if command == "start" else ["resume", "r1"]
    for value in ([f"@{payload}"] if len(NASTY[case]) > 100_000 else [f"@{payload}", NASTY[case]]):
        _refused(lab.cmd(state, *head, f"{option}={value}"))
    assert _files(state) == before


def test_invalid_utf8_from_a_file(strict_lab: tuple[Lab, Path]) -> None:
    lab, state = strict_lab
    payload = lab.root / "latin1.json"
    payload.write_bytes(b'{"magic": "caf\xe9"}')
    before = _files(state)
    line = _refused(lab.cmd(state, "resume", "r1", f"--data=@{payload}"))
    assert "UTF-8" in line
    assert _files(state) == before


HOSTILE = {
    "python-apply": "name: evil\nsteps: !!python/object/apply:os.system ['touch {marker}']\n",
    "python-new": "name: evil\nsteps:\n  - !!python/object/new:subprocess.Popen [['touch', "
                  "'{marker}']]\n",
    "python-name": "name: evil\nsteps:\n  - id: a\n    handler: !!python/name:os.system\n",
    "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                    strict=True))
        + "name: evil\nsteps: *i\n",
    "ten-megabytes": "name: evil\nsteps:\n  - id: a\n#" + "x" * (10 * 1024 * 1024) + "\n",
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_manifests_are_refused_and_run_no_code(lab: Lab, case: str) -> None:
    marker = lab.root / "pwned"
    (lab.workflows / "evil.yaml").write_text(HOSTILE[case].replace("{marker}", str(marker)))
    (lab.workflows / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()  # runs only if the module is imported\n"
        "def a(ctx):\n    return 1\n")
    state = lab.root / "state"
    for args in (["start", "evil"], ["validate", "evil"], ["start", str(lab.workflows / "evil.yaml")]):
        out = lab.cmd(state, *args)
        _refused(out)
        assert not marker.exists(), f"{case}: code ran"
    assert not state.exists() or not list((state / "runs").iterdir())


def test_lone_surrogates_never_reach_a_snapshot(lab: Lab) -> None:
    """Text that cannot be encoded as UTF-8 is refused up front (it used to crash mid-write)."""
    state = lab.root / "state"
    lab.ok(state, "start", "flow", "--run-id", "r1")
    before = _files(state)
    bad_byte = "\udcff"  # what Python makes of the argv byte 0xff
    for args in (["start", "flow", "--input", '{"x": "\\ud800"}'],
                 ["resume", "r1", "--data", '{"token": "\\udfff"}'],
                 ["resume", "r1", "--data", '{"token": "x"}', "--action", f"ok{bad_byte}"],
                 ["cancel", "r1", "--reason", f"why{bad_byte}"]):
        _refused(lab.cmd(state, *args))
        assert _files(state) == before
    (lab.workflows / "surrogate.yaml").write_text("name: surrogate\nsteps:\n  - id: s\n")
    (lab.workflows / "surrogate.py").write_text("def s(ctx):\n    return '\\ud800'\n")
    out = lab.cmd(state, "start", "surrogate", "--run-id", "r2", "--json")
    assert out.rc == 1 and "Traceback" not in out.stderr, out  # the step fails, cleanly
    assert out.json()["error"]["step"] == "s"
    assert lab.cmd(state, "show", "r2", "--json").json()["status"] == "failed"
