"""The PostgreSQL benchmark (SPEC §10), beside DBOS Transact on the same server in the same run.

    python bench/run.py --store postgresql://USER@HOST:PORT/DB [--quick] [--json] [--out FILE]
                        [--dbos-venv DIR]

Everything runs in databases of its own that it makes on that server and drops at the end
(wfrun's in a schema, `?options=-csearch_path%3Dbench_...`), so that the commits it counts
from `pg_stat_database.xact_commit` are its own, exactly. Prints a table (or, with --json,
the JSON) and writes the JSON to --out.
"""

from __future__ import annotations

import compileall
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pg_dbos
import pg_steps
import pg_wfrun
from pg_server import Server

REPO = Path(__file__).resolve().parent.parent
LEASE_S = 2.0  # WFRUN_LEASE of the recovery workload (the default is 30 s)

FULL = {"lengths": (10, 60), "reps": 9, "due": 10_000, "workers": (1, 2, 4), "recoveries": 3}
QUICK = {"lengths": (5, 25), "reps": 3, "due": 1_000, "workers": (1, 2, 4), "recoveries": 1}


def attempt(what: str, work: Callable[[], Any]) -> Any:
    """The result of one workload, or {"error": ...} if it failed (the others still run)."""
    print(f"... {what}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        got = work()
        print(f"    ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        return got
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {str(exc).strip()[:600]}"}


def measure(url: str, quick: bool, venv: Path) -> dict[str, Any]:
    """Every workload, wfrun's then DBOS's, on the server of `url`."""
    sizes: dict[str, Any] = QUICK if quick else FULL
    # The wfrun measured is the one beside this file, in the commands it starts too.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    compileall.compile_dir(str(REPO / "wfrun"), quiet=1)  # as an installed wfrun has it
    server = Server(url)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
        "quick": quick,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "server": server.settings(),
    }
    work = Path(tempfile.mkdtemp(prefix="wfrun-bench-pg-"))
    try:
        wf = pg_wfrun.write_workflows(work, sizes["lengths"])
        wdb = server.create_database("wfrun")
        print(f"... DBOS Transact: its virtualenv {venv}", file=sys.stderr, flush=True)
        python, why = pg_dbos.ensure_venv(venv)
        wfrun: dict[str, Any] = {"due": []}
        dbos: dict[str, Any] = {"error": why}
        ddb = ""
        if python is not None:
            dbos = {"venv": str(venv), **pg_dbos.describe(python), "queue": []}
            ddb = server.create_database("dbos")
        results["wfrun"], results["dbos"] = wfrun, dbos
        steps = attempt("commits and time per step, wfrun and DBOS in alternation",
                        lambda: per_step(server, wdb, wf, python, ddb, sizes))
        wfrun["steps"] = steps.get("wfrun", steps)
        if python is not None:
            dbos["steps"] = steps.get("dbos", steps)
        for w in sizes["workers"]:  # wfrun's and DBOS's at each count, one after the other
            wfrun["due"].append(attempt(
                f"wfrun: {sizes['due']} due reruns, {w} tick processes",
                partial(pg_wfrun.due_reruns, server, wdb, wf, sizes["due"], w)))
            if python is not None:
                dbos["queue"].append(attempt(
                    f"DBOS: {sizes['due']} queued workflows, {w} worker processes",
                    partial(pg_dbos.queue, server, ddb, python, sizes["due"], w)))
        common_floor(results)
        wfrun["recovery"] = attempt("wfrun: recovery after a kill -9 and after a SIGSTOP",
                                    partial(pg_wfrun.recovery, server, wdb, wf, LEASE_S,
                                            sizes["recoveries"]))
    finally:
        results["machine"]["load_average_at_end"] = os.getloadavg()
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def common_floor(results: dict[str, Any]) -> None:
    """Each due trial's ratio to the commit rate over one floor for all of them (the median of
    the trials' floors): a trial's own floor, 200 commits in a fraction of a second, catches
    the disk at one moment; wfrun's and DBOS's trials alternate, so one floor keeps their
    ratios comparable. The ratio over a trial's own floor is kept beside it."""
    trials = [t for t in [*results["wfrun"]["due"], *results["dbos"].get("queue", [])]
              if "error" not in t]
    if not trials:
        return
    floor = statistics.median(t["floor_ms"] for t in trials) / 1000
    results["due_floor_ms"] = floor * 1000
    for trial in trials:
        trial["vs_commit_rate_own_floor"] = trial["vs_commit_rate"]
        trial["vs_commit_rate"] = trial["per_s"] * floor


def per_step(server: Server, wdb: str, wf: Path, python: Path | None, ddb: str,
             sizes: dict[str, Any]) -> dict[str, Any]:
    """wfrun's N-step workflows (by its command, in this process, and in this process with
    synchronous_commit off) and DBOS's, in alternation (pg_steps)."""
    lengths, reps = sizes["lengths"], sizes["reps"]
    wcmd = pg_wfrun.CommandSteps(server, wdb, wf, lengths)
    # The same in process with synchronous_commit off: what a step costs besides waiting
    # for the server's disk (as the file store's figure with fsync made a no-op).
    no_sync = server.database_url(wdb, "bench_steps", ["synchronous_commit=off"])
    engines: dict[str, pg_steps.Steps] = {
        "wfrun": wcmd, "wfrun_in_process": pg_wfrun.InProcessSteps(wdb, wcmd.url, wf),
        "wfrun_no_sync": pg_wfrun.InProcessSteps(wdb, no_sync, wf)}
    if python is not None:
        engines["dbos"] = pg_dbos.CommandSteps(server, ddb, python, lengths)
    got = pg_steps.measure(server, engines, lengths, reps)
    inside, unsynced = got.pop("wfrun_in_process"), got.pop("wfrun_no_sync")
    got["wfrun"].update({"in_process_per_step_ms": inside["per_step_ms"],
                         "in_process_per_step_in_commits": inside["per_step_in_commits"],
                         "in_process_per_step_in_commits_each": inside["per_step_in_commits_each"],
                         "in_process_commits_per_step": inside["commits_per_step"],
                         "in_process_fastest_per_step_ms": inside["fastest_per_step_ms"],
                         "in_process_fastest_per_step_in_commits":
                             inside["fastest_per_step_in_commits"],
                         "in_process_no_sync_per_step_ms": unsynced["per_step_ms"],
                         "in_process_no_sync_fastest_per_step_ms": unsynced["fastest_per_step_ms"]})
    wcmd.close()
    return got


def targets(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """SPEC §10's targets: (what, measured, target, met)."""
    steps = r["wfrun"]["steps"]
    rec = r["wfrun"]["recovery"]
    rows = []
    if "error" not in steps:
        cps = steps["commits_per_step"]
        rows.append(("commits per step", f"{cps:.2f}", "<= 1.2", _yes(cps <= 1.2)))
        for key, what in (("per_step_in_commits", "per-step time / one single-row commit"),
                          ("in_process_per_step_in_commits", "the same, in process")):
            ratio, each = steps[key], steps[f"{key}_each"]
            # A slope that some repetition found negative is the host's noise, not a figure.
            met = "unclear (noise)" if min(each) <= 0 else _yes(ratio <= 1.5)
            rows.append((what, f"{ratio:.2f} ({min(each):.2f} to {max(each):.2f})", "<= 1.5", met))
    if "error" not in rec:
        limit = rec["lease_s"] + 2
        for how, what in (("kill", "kill -9"), ("stop", "SIGSTOP")):
            got = rec[how]
            worst, every = got["max_s"], got["recovered"] == len(got["trials"])
            shown = (f"{worst:.2f} s (worst of {len(got['trials'])})" if worst is not None
                     else "never")
            rows.append((f"run of a worker stopped by {what} completed elsewhere", shown,
                         f"<= {limit:g} s", _yes(every and worst is not None and worst <= limit)))
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{unit}"
    return "-"


def print_table(r: dict[str, Any]) -> None:
    """The figures for people: wfrun and DBOS side by side, then the targets."""
    server = r["server"]
    print(f"PostgreSQL {server['version']} (synchronous_commit={server['synchronous_commit']}, "
          f"fsync={server['fsync']}, wal_sync_method={server['wal_sync_method']}); "
          f"{r['machine']['cpus']} CPUs; {r['date']}")
    loads = [r["machine"].get(f"load_average_at_{when}") for when in ("start", "end")]
    if all(loads):
        print("load average (1, 5, 15 min) at the start: {}; at the end: {}".format(
            *(", ".join(f"{x:.1f}" for x in load) for load in loads)))
    d = r["dbos"]
    ws, ds = r["wfrun"]["steps"], d.get("steps", {"error": d.get("error", "")})
    print(f"\n{'per step (N-step workflow, a process each)':<52} {'wfrun':>12} "
          f"{'DBOS ' + d.get('version', ''):>14}")
    for key, label, unit in (("commits_per_step", "commits per step (xact_commit slope)", ""),
                             ("commits_per_command", "commits per command (constant)", ""),
                             ("per_step_ms", "time per step (slope of wall time)", " ms"),
                             ("command_constant_ms", "command's constant cost", " ms"),
                             ("floor_beside_steps_ms", "one single-row commit (floor)", " ms"),
                             ("per_step_in_commits", "time per step / floor", " x"),
                             ("in_process_per_step_ms", "in process: time per step", " ms"),
                             ("in_process_per_step_in_commits", "in process: per step / floor",
                              " x"),
                             ("fastest_per_step_in_commits", "fastest of each length: per step / "
                              "fastest floor", " x"),
                             ("in_process_fastest_per_step_in_commits", "the same, in process",
                              " x"),
                             ("in_process_no_sync_per_step_ms",
                              "in process, synchronous_commit off: per step", " ms")):
        print(f"{label:<52} {_fmt(ws.get(key), unit):>12} {_fmt(ds.get(key), unit):>14}")
    spread = [f"{name} {min(got[key]):.2f}-{max(got[key]):.2f}"
              for name, got, key in (("wfrun", ws, "per_step_in_commits_each"),
                                     ("DBOS", ds, "per_step_in_commits_each"))
              if got.get(key)]
    if spread:
        print(f"{'  time per step / floor, each repetition':<52} {', '.join(spread)}")
    print(f"\n{'due work fired by N processes':<30} {'wfrun /s':>10} {'x floor':>8} "
          f"{'commits':>8} {'DBOS /s':>10} {'x floor':>8} {'commits':>8}")
    for i, due in enumerate(r["wfrun"]["due"]):
        q = d["queue"][i] if "queue" in d else {}
        workers = due.get("workers", q.get("workers", "?"))
        print(f"{f'{workers} process(es)':<30} {_fmt(due.get('per_s'), '', 0):>10} "
              f"{_fmt(due.get('vs_commit_rate'), '', 3):>8} "
              f"{_fmt(due.get('commits_per_rerun')):>8} {_fmt(q.get('per_s'), '', 0):>10} "
              f"{_fmt(q.get('vs_commit_rate'), '', 3):>8} {_fmt(q.get('commits_per_workflow')):>8}")
    print(f"  (x floor: the rate times one floor commit, {_fmt(r.get('due_floor_ms'))} ms, the median "
          "floor of the trials)")
    for name, part in (("wfrun", r["wfrun"]), ("DBOS", d)):
        for key, value in part.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and "error" in item:
                    print(f"{name} {key}: not measured: {item['error']}")
        if name == "DBOS" and "error" in d:
            print(f"DBOS Transact not measured: {d['error']}")
    rec = r["wfrun"]["recovery"]
    if "error" not in rec:
        print(f"\nrecovery (WFRUN_LEASE={rec['lease_s']:g}; the other worker: tick --watch "
              f"--interval {rec['watch_interval_s']:g}):")
        for how in ("kill", "stop"):
            for t in rec[how]["trials"]:
                print(f"  {how}: step executed again {_fmt(t['to_step_again_s'], ' s')} after, "
                      f"run {t['status']} {_fmt(t['to_completed_s'], ' s')} after"
                      + (" (TAKEN OVER BEFORE THE STOP)" if t["taken_over_before_stop"] else ""))
    print(f"\n{'target (SPEC §10)':<56} {'measured':>24} {'goal':>9}  met")
    for what, value, goal, met in targets(r):
        print(f"{what:<56} {value:>24} {goal:>9}  {met}")


def main(url: str, quick: bool, out: str | None, as_json: bool, venv: str | None) -> None:
    """Measure, then print the table (or the JSON) and write the JSON to `out`."""
    where = Path(venv or os.environ.get("BENCH_DBOS_VENV") or REPO / "bench" / ".work" / "dbos-venv")
    results = measure(url, quick, where)
    results["targets"] = [dict(zip(("what", "measured", "target", "met"), row, strict=True))
                          for row in targets(results)]
    text = json.dumps(results, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    if as_json:
        print(text)
    else:
        print_table(results)
        if out:
            print(f"\nwritten to {out}")
