"""One damaged run among many, on the file store and on PostgreSQL (SPEC §6: "every other run
keeps working"): `pending`, `list` and `prune` list (or prune) every readable run, say the
damaged one once on stderr, naming its file or row and what to do, leave it out of `--json`
and untouched, and exit 5 (docs/cli.md, exit codes)."""

from __future__ import annotations

from pathlib import Path

from conftest import Outcome
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.testing import Harness

from ._damaged import damage

GATES = 40  # more than a page of `list` (20) and than a batch of reads
JOBS = 3
DAMAGED = "g05"
HELLO = '{"hello": 1}'


def _wfrun(store_url: str, workflows: Path, *args: str) -> Outcome:
    result = CliRunner().invoke(app, ["--store", store_url, "--workflows-dir", str(workflows), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def _one_line_about_the_damaged_run(out: Outcome, store_url: str) -> None:
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    [line] = lines
    assert line.startswith("error: ") and "Traceback" not in out.stderr, line
    where = (str(Path(store_url) / "runs" / f"{DAMAGED}.json") if "://" not in store_url
             else f"run {DAMAGED} is not a valid run")
    assert where in line, line
    assert "restore" in line and "backup" in line, line  # what to do, as doctor says it


def test_one_damaged_run_never_hides_the_others(store_url: str, tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "gate.yaml").write_text("steps:\n  - id: ok\n    wait: true\n")
    (workflows / "job.yaml").write_text("steps:\n  - id: work\n")
    (workflows / "job.py").write_text("def work(ctx):\n    return 1\n")
    harness = Harness(workflows, store_url, start="2020-01-01T00:00:00Z")
    gates = [harness.start("gate", run_id=f"g{i:02d}")["run_id"] for i in range(1, GATES + 1)]
    jobs = [harness.start("job", run_id=f"j{i}")["run_id"] for i in range(1, JOBS + 1)]
    stored = damage(store_url, DAMAGED)
    before = stored()
    others = sorted(set(gates) - {DAMAGED})

    for args in (["pending"], ["list", "--all"]):
        out = _wfrun(store_url, workflows, *args)
        assert out.code == 5, (args, out)
        _one_line_about_the_damaged_run(out, store_url)
        shown = {word for line in out.stdout.splitlines() for word in line.split()}
        assert set(others) <= shown and DAMAGED not in shown, (args, out.stdout)
        if args[0] == "list":
            assert set(jobs) <= shown
    for args in (["pending", "--json"], ["list", "--status", "suspended", "--json"]):
        out = _wfrun(store_url, workflows, *args)
        assert out.code == 5, (args, out)
        _one_line_about_the_damaged_run(out, store_url)
        assert sorted(row["run_id"] for row in out.json()) == others, args

    pruned = _wfrun(store_url, workflows, "prune", "--older-than", "1s", "--json")
    assert pruned.code == 5, pruned
    _one_line_about_the_damaged_run(pruned, store_url)
    report = pruned.json()
    assert sorted(r["run_id"] for r in report["runs"]) == jobs and report["errors"] == []
    assert sorted(row["run_id"] for row in _wfrun(
        store_url, workflows, "list", "--all", "--json").json()) == others
    assert stored() == before, "the damaged run was changed"
