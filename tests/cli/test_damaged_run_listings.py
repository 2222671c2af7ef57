"""One damaged run among many, on the file store and on PostgreSQL (SPEC §6: "every other run
keeps working"): `pending`, `list` and `prune` list (or prune) every readable run, say the
damaged one once on stderr, naming its file or row and what to do, leave it out of `--json`
and untouched, and exit 5 (docs/cli.md, exit codes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _pg
import pytest
from conftest import Outcome
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.testing import Harness

GATES = 40  # more than a page of `list` (20) and than a batch of reads
JOBS = 3
DAMAGED = "g05"
HELLO = '{"hello": 1}'


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in [n for n in os.environ if n.startswith("WFRUN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    if request.param == "file":
        yield str(tmp_path / "state")
    else:
        with _pg.schema() as url:
            yield url


def _damage(store: str) -> Any:
    """Write `{"hello": 1}` over the run's stored state, as a hand edit would; what it wrote."""
    if "://" not in store:
        path = Path(store) / "runs" / f"{DAMAGED}.json"
        path.write_text(HELLO)
        return lambda: path.read_text()
    import psycopg

    def row() -> Any:
        with psycopg.connect(store, autocommit=True) as conn:
            return conn.execute("SELECT snapshot::text, revision FROM wfrun_runs "
                                "WHERE run_id = %s", [DAMAGED]).fetchone()

    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute("UPDATE wfrun_runs SET snapshot = %s WHERE run_id = %s", [HELLO, DAMAGED])
    return row


def _wfrun(store: str, workflows: Path, *args: str) -> Outcome:
    result = CliRunner().invoke(app, ["--store", store, "--workflows-dir", str(workflows), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def _one_line_about_the_damaged_run(out: Outcome, store: str) -> None:
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    [line] = lines
    assert line.startswith("error: ") and "Traceback" not in out.stderr, line
    where = (str(Path(store) / "runs" / f"{DAMAGED}.json") if "://" not in store
             else f"run {DAMAGED} is not a valid run")
    assert where in line, line
    assert "restore" in line and "backup" in line, line  # what to do, as doctor says it


def test_one_damaged_run_never_hides_the_others(store: str, tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "gate.yaml").write_text("steps:\n  - id: ok\n    wait: true\n")
    (workflows / "job.yaml").write_text("steps:\n  - id: work\n")
    (workflows / "job.py").write_text("def work(ctx):\n    return 1\n")
    harness = Harness(workflows, store, start="2020-01-01T00:00:00Z")
    gates = [harness.start("gate", run_id=f"g{i:02d}")["run_id"] for i in range(1, GATES + 1)]
    jobs = [harness.start("job", run_id=f"j{i}")["run_id"] for i in range(1, JOBS + 1)]
    stored = _damage(store)
    before = stored()
    others = sorted(set(gates) - {DAMAGED})

    for args in (["pending"], ["list", "--all"]):
        out = _wfrun(store, workflows, *args)
        assert out.code == 5, (args, out)
        _one_line_about_the_damaged_run(out, store)
        shown = {word for line in out.stdout.splitlines() for word in line.split()}
        assert set(others) <= shown and DAMAGED not in shown, (args, out.stdout)
        if args[0] == "list":
            assert set(jobs) <= shown
    for args in (["pending", "--json"], ["list", "--status", "suspended", "--json"]):
        out = _wfrun(store, workflows, *args)
        assert out.code == 5, (args, out)
        _one_line_about_the_damaged_run(out, store)
        assert sorted(row["run_id"] for row in out.json()) == others, args

    pruned = _wfrun(store, workflows, "prune", "--older-than", "1s", "--json")
    assert pruned.code == 5, pruned
    _one_line_about_the_damaged_run(pruned, store)
    report = pruned.json()
    assert sorted(r["run_id"] for r in report["runs"]) == jobs and report["errors"] == []
    assert sorted(row["run_id"] for row in _wfrun(
        store, workflows, "list", "--all", "--json").json()) == others
    assert stored() == before, "the damaged run was changed"
