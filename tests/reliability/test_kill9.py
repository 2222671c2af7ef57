"""Random kill -9: wfrun processes (start, resume, cancel, tick) SIGKILLed at random moments.

Each trial copies a tiny state directory (a suspended run, a run waiting for a rerun, a
sleeping run), runs one command as its own process and SIGKILLs it 0-60 ms after it began
(commands run from a pre-imported launcher, so the window covers their file work, not the
interpreter's start-up). Then: no snapshot is corrupt; a resume that exited 0 was applied
exactly once and a killed one 0 or 1 times; a cancel likewise; no step attempt executed twice;
and every run can still be finished by `tick` and `resume`.
"""

from __future__ import annotations

import json
import queue
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from wfrun.store.file import FileStore

from ._relutil import (
    Lab,
    Warm,
    assert_no_attempt_twice,
    copy_state,
    future,
    load_all,
    precreate_buckets,
)

COMMANDS = ("start", "resume", "cancel", "tick")


@dataclass
class Trial:
    n: int
    command: str
    target: str
    delay: float
    rc: int | None = None
    killed: bool = False


def _template(lab: Lab) -> Path:
    template = lab.root / "template"
    lab.ok(template, "start", "flow", "--run-id", "s")  # suspended at approve
    lab.ok(template, "start", "poll", "--run-id", "w")  # waiting for a rerun
    lab.ok(template, "start", "nap", "--run-id", "z")  # sleeping
    precreate_buckets(template)
    return template


def _run_trial(lab: Lab, template: Path, trial: Trial, now: str, rng: random.Random) -> Trial:
    state = lab.root / f"t{trial.n}"
    copy_state(template, state)
    args = {
        "start": ["start", "flow", "--run-id", "new"],
        "resume": ["resume", "s", "--data", json.dumps({"token": f"trial{trial.n}"})],
        "cancel": ["cancel", trial.target],
        "tick": ["tick", "--now", now],
    }[trial.command]
    env = {"WFRUN_TEST_STEP_SLEEP": rng.choice(["0", "0", "0.003", "0.01"])}
    out = lab.cmd(state, *args, env=env, kill_after=trial.delay)
    trial.rc, trial.killed = out.rc, out.killed
    assert out.killed or out.rc == 0, (trial, out)
    assert "Traceback" not in out.stderr

    runs = load_all(state)  # fails on any snapshot that does not parse and verify
    assert set(runs) - {"new"} == {"s", "w", "z"}, set(runs)
    for run_id in runs:
        final = lab.finish(state, run_id, now=now)
        assert final.status in ("completed", "cancelled"), (trial, run_id, final.status)
    _check(state, trial)
    return trial


def _check(state: Path, trial: Trial) -> None:
    store = FileStore(state)
    runs = load_all(state)
    rows = assert_no_attempt_twice(state)
    s = runs["s"]
    resumed = [e for e in store.read_history("s") if e["type"] == "resumed"]
    assert len(resumed) <= 1, resumed  # a suspension is never resumed twice
    token = (s.steps["approve"].resume_data or {}).get("token")
    if s.status == "completed":
        assert {note for r, step, _, note in rows if (r, step) == ("s", "b")} == {token}
    if trial.command == "resume":
        mine = f"trial{trial.n}"
        if trial.rc == 0:  # acknowledged: applied, exactly once, and the finisher was refused
            assert token == mine and len(resumed) == 1, (trial, token, resumed)
        else:  # killed: applied once or not at all, never mixed with the finisher's data
            assert token in (mine, "finisher", None), token
    elif s.status == "completed":
        assert token == "finisher"
    if trial.command == "cancel":
        target = runs[trial.target]
        cancels = [e for e in store.read_history(trial.target) if e["type"] == "cancelled"]
        assert len(cancels) <= 1
        if trial.rc == 0:
            assert target.status == "cancelled"
    else:
        assert all(r.status == "completed" for r in runs.values()), {
            r.run_id: r.status for r in runs.values()}
    if trial.command == "start" and trial.rc == 0:
        assert runs["new"].status == "completed"


def _campaign(lab: Lab, pool: list[Warm], trials: int, seed: int) -> list[Trial]:
    template = _template(lab)
    now = future()
    rng = random.Random(seed)
    plan = [Trial(n, rng.choice(COMMANDS), rng.choice(["s", "w", "z"]), rng.uniform(0, 0.060))
            for n in range(trials)]
    launchers: queue.Queue[Warm] = queue.Queue()
    for launcher in pool:
        launchers.put(launcher)

    def one(trial: Trial) -> Trial:
        launcher = launchers.get()
        try:
            return _run_trial(lab.using(launcher), template, trial,
                              now, random.Random(seed * 100_003 + trial.n))
        finally:
            launchers.put(launcher)

    with ThreadPoolExecutor(len(pool)) as executor:
        done = list(executor.map(one, plan))
    killed = Counter(t.command for t in done if t.killed)
    finished = Counter(t.command for t in done if not t.killed)
    print(f"kill -9 trials: killed {dict(killed)}, completed first {dict(finished)}")
    # the window must hit commands mid-way, and let some finish
    assert sum(killed.values()) >= trials // 10, (killed, finished)
    assert sum(finished.values()) >= trials // 50, (killed, finished)
    assert all(killed[c] for c in COMMANDS), killed
    return done


def test_random_kill9_60_trials(lab: Lab, warm_pool: list[Warm]) -> None:
    _campaign(lab, warm_pool, 60, seed=4)  # the default suite's sample; 1,000 below (slow)


@pytest.mark.slow
def test_random_kill9_1000_trials(lab: Lab, warm_pool: list[Warm]) -> None:
    _campaign(lab, warm_pool, 1000, seed=1004)
