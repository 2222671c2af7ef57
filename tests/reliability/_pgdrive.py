"""How the PostgreSQL proofs drive their runs: a shuffled mix of workflows started over HTTP,
then every suspension resumed as soon as it can be (an `ask` step's link as soon as the step
logged it, which may be before it paused: an early callback; a pipeline's `wait` step once the
database shows it suspended), over HTTP and with `wfrun resume`, some twice at once, until
every run finished."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ._pgfleet import Fleet
from ._pgload import Load, Watch, ledger_links

FINISHED = ("completed", "failed", "cancelled")


def plan(mix: dict[str, float], runs: int, rng: random.Random) -> list[str]:
    """`runs` workflow names in the shares `mix` gives, shuffled."""
    names = [name for name, share in mix.items() for _ in range(round(runs * share))]
    rng.shuffle(names)
    assert len(names) == runs, (len(names), runs)
    return names


def resume_asks(load: Load, links: dict[str, str], rng: random.Random) -> None:
    """Resume `ask` runs at the link their step logged: mostly over HTTP, some with `wfrun
    resume`, and some twice at once (HTTP against `wfrun resume`, or one server against the
    other), each with data of its own."""
    for run_id, link in links.items():
        draw = rng.random()
        if draw < 0.75:
            load.later("http", load.resume_http, run_id, "ask", link, f"h-{run_id}")
        elif draw < 0.85:
            load.later("cli", load.resume_cli, run_id, "ask", f"c-{run_id}")
        elif draw < 0.93:
            load.later("http", load.resume_http, run_id, "ask", link, f"rh-{run_id}")
            load.later("cli", load.resume_cli, run_id, "ask", f"rc-{run_id}")
        else:
            for n, base in enumerate(load.bases):
                load.later("http", load.resume_http, run_id, "ask", link, f"r{n}-{run_id}", base)


def resume_pipeline(load: Load, run_id: str, over_http: bool) -> None:
    """A pipeline run's `approve` step: with `wfrun resume`, or over HTTP at the link that
    `wfrun show --json` prints."""
    if not over_http:
        load.resume_cli(run_id, "approve", f"c-{run_id}")
        return
    link = load.link_of(run_id, "approve")
    if link is not None:
        load.later("http", load.resume_http, run_id, "approve", link, f"h-{run_id}")


def drive(fleet: Fleet, load: Load, runs: int, deadline: float, rng: random.Random,
          meanwhile: Callable[[Watch], None] | None = None) -> dict[str, int]:
    """Resume what becomes suspended until `runs` runs finished and no request is pending,
    or `deadline` seconds passed (calling `meanwhile` with the test's own connection every
    round); the runs per status."""
    watch = Watch(fleet.url)
    resumed: set[str] = set()
    counts: dict[str, int] = {}
    end = time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            links = ledger_links(fleet.ledger, resumed)
            resumed.update(links)
            resume_asks(load, links, rng)
            for run_id in watch.suspended("pipeline"):
                if run_id not in resumed:
                    resumed.add(run_id)
                    load.later("cli", resume_pipeline, load, run_id, rng.random() < 0.2)
            counts = watch.statuses()
            if sum(counts.get(s, 0) for s in FINISHED) == runs and not load.busy():
                break
            if meanwhile is not None:
                meanwhile(watch)
            time.sleep(0.3)
    finally:
        watch.close()
    return counts
