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
    visit the database. Times are medians; the floor is the median of the floor commits
    made between the processes."""
    samples: dict[str, dict[int, list[dict[str, float]]]] = {
        name: {n: [] for n in lengths} for name in engines}
    floors: list[float] = []
    for _ in range(reps):
        for n in lengths:
            for name, engine in engines.items():
                floors += server.floor(10)
                before = server.commits(engine.database)
                got = engine.sample(n)
                got["commits"] = server.commits(engine.database) - before
                samples[name][n].append(got)
    floor = statistics.median(floors)
    return {name: summarize(by_length, floor, reps) for name, by_length in samples.items()}


def summarize(by_length: dict[int, list[dict[str, float]]], floor: float, reps: int
              ) -> dict[str, Any]:
    """Slopes and constants of one engine's samples, and the ratio of time to the floor."""
    def median(key: str) -> dict[int, float]:
        return {n: statistics.median(s[key] for s in got) for n, got in by_length.items()}

    per_commit, const_commit = slope(median("commits"))
    per_time, const_time = slope(median("seconds"))
    r: dict[str, Any] = {
        "steps_lengths": sorted(by_length), "steps_reps": reps,
        "commits_by_length": {str(n): [int(s["commits"]) for s in got]
                              for n, got in by_length.items()},
        "commits_per_step": per_commit, "commits_per_command": const_commit,
        "per_step_ms": per_time * 1000, "command_constant_ms": const_time * 1000,
        "floor_beside_steps_ms": floor * 1000, "per_step_in_commits": per_time / floor,
    }
    if all("inside_seconds" in s for got in by_length.values() for s in got):
        per_inside, _ = slope(median("inside_seconds"))
        r["in_process_per_step_ms"] = per_inside * 1000
        r["in_process_per_step_in_commits"] = per_inside / floor
    return r
