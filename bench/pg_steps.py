"""Per-step figures of bench/pg.py: N-step workflows of wfrun and of DBOS Transact, run by
their command (a process each) at two lengths, in alternation with each other and with floor
commits, so that a machine whose load drifts slows all of them alike. Per step is the slope
between the two lengths; what a command costs whatever its length is the constant."""

from __future__ import annotations

import statistics
from typing import Any, Protocol

from pg_server import Server


class Steps(Protocol):
    """One engine's N-step workflow, run by a process of its own."""

    database: str

    def sample(self, n: int) -> dict[str, float]:
        """Run one workflow of `n` steps: its "seconds" (the process's wall time), and
        "inside_seconds" if the process timed the workflow itself."""
        ...


def slope(by_length: dict[int, float]) -> tuple[float, float]:
    """Per unit and constant of a line through two (length, value) points."""
    (n1, v1), (n2, v2) = sorted(by_length.items())
    per = (v2 - v1) / (n2 - n1)
    return per, v1 - per * n1


def measure(server: Server, engines: dict[str, Steps], lengths: tuple[int, int], reps: int
            ) -> dict[str, dict[str, Any]]:
    """Each engine's commits and time per step. Commits of one process are exact (counted in
    its own database once it has exited); of `reps` processes the median is taken, as a
    command may open one more pooled connection now and then, or the server's autovacuum
    visit the database. Time per step is taken within each repetition (its two lengths, run
    a few seconds apart, over the floor commits made between them), then the median of the
    repetitions."""
    samples: dict[str, list[dict[int, dict[str, float]]]] = {name: [] for name in engines}
    floors: list[float] = []
    for _ in range(reps):
        got: dict[str, dict[int, dict[str, float]]] = {name: {} for name in engines}
        between: list[float] = []
        for n in lengths:
            for name, engine in engines.items():
                between += server.floor(10)
                before = server.commits(engine.database)
                got[name][n] = engine.sample(n)
                got[name][n]["commits"] = server.commits(engine.database) - before
        floors.append(statistics.median(between))
        for name in engines:
            samples[name].append(got[name])
    return {name: summarize(runs, floors) for name, runs in samples.items()}


def summarize(runs: list[dict[int, dict[str, float]]], floors: list[float]) -> dict[str, Any]:
    """One engine's figures from its repetitions (`runs[i]`: each length's sample, beside
    `floors[i]`, the median floor commit of that repetition)."""
    lengths = sorted(runs[0])

    def per_step(key: str) -> tuple[list[float], list[float]]:
        lines = [slope({n: run[n][key] for n in lengths}) for run in runs]
        return [per for per, _ in lines], [const for _, const in lines]

    per_commit, const_commit = slope(
        {n: statistics.median(run[n]["commits"] for run in runs) for n in lengths})
    per, const = per_step("seconds")
    ratios = [p / f for p, f in zip(per, floors, strict=True)]
    r: dict[str, Any] = {
        "steps_lengths": lengths, "steps_reps": len(runs),
        "commits_by_length": {str(n): [int(run[n]["commits"]) for run in runs] for n in lengths},
        "commits_per_step": per_commit, "commits_per_command": const_commit,
        "per_step_ms": statistics.median(per) * 1000,
        "per_step_ms_each": [p * 1000 for p in per],
        "command_constant_ms": statistics.median(const) * 1000,
        "floor_beside_steps_ms": statistics.median(floors) * 1000,
        "floor_ms_each": [f * 1000 for f in floors],
        "per_step_in_commits": statistics.median(ratios),
        "per_step_in_commits_each": ratios,
    }
    # The fastest process of each length is the one the host disturbed least: their slope,
    # over the fastest repetition's floor, estimates what a quiet machine would measure.
    fastest, _ = slope({n: min(run[n]["seconds"] for run in runs) for n in lengths})
    r["seconds_by_length"] = {str(n): [run[n]["seconds"] for run in runs] for n in lengths}
    r["fastest_per_step_ms"] = fastest * 1000
    r["fastest_floor_ms"] = min(floors) * 1000
    r["fastest_per_step_in_commits"] = fastest / min(floors)
    if all("inside_seconds" in run[n] for run in runs for n in lengths):
        inside, _ = per_step("inside_seconds")
        r["in_process_per_step_ms"] = statistics.median(inside) * 1000
        r["in_process_per_step_in_commits"] = statistics.median(
            [p / f for p, f in zip(inside, floors, strict=True)])
        fastest_inside, _ = slope(
            {n: min(run[n]["inside_seconds"] for run in runs) for n in lengths})
        r["in_process_fastest_per_step_ms"] = fastest_inside * 1000
        r["in_process_fastest_per_step_in_commits"] = fastest_inside / min(floors)
    return r
