"""The checks of the PostgreSQL proofs: what each run became (state and history, read back
through the store), what each resume was answered, and what the ledger says each step attempt
did; each check returns the problems it found, as sentences, and the figures it counted."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from wfrun.model import Run

from ._pgload import Answer
from ._pgproject import Attempt

SUSPENSION = {"ask": "ask", "pipeline": "approve"}  # workflow -> the step that is resumed
CODE_STEPS = {"ask": ("ask", "answer"), "poll": ("poll", "after"), "nap": ("first", "after"),
              "flaky": ("flaky", "after"), "pipeline": ("poll", "work", "done")}


def read_back(store: Any, run_ids: list[str]) -> tuple[dict[str, Run], dict[str, list[dict[str, Any]]]]:
    """Every run and its history, as the store has them."""
    runs = {run_id: store.load(run_id) for run_id in run_ids}
    return runs, {run_id: store.read_history(run_id) for run_id in run_ids}


def unfinished(store: Any, workflows: dict[str, str], answers: list[Answer],
               attempts: list[Attempt]) -> list[str]:
    """What is known of each run that did not finish: its state, its history, the answers its
    resumes got and its ledger lines, with their times (for the failure message of a proof)."""
    from wfrun.durations import parse_iso

    found = []
    for run_id, workflow in sorted(workflows.items()):
        run = store.load(run_id)
        if run.finished:
            continue
        history = [(f"{parse_iso(e['at']).timestamp():.3f}", e["type"], e.get("step"),
                    e.get("runs")) for e in store.read_history(run_id)]
        resumes = [(f"{a.at:.3f}", a.via, a.code, a.token, a.body[:300]) for a in answers
                   if a.run_id == run_id]
        ledger = [(f"{a.at:.3f}", a.step, a.runs, a.pgid, a.pid) for a in attempts
                  if a.run_id == run_id]
        found.append(f"run {run_id} ({workflow}) is {run.status}: steps "
                     f"{ {sid: (st.status, st.runs) for sid, st in run.steps.items()} }; "
                     f"history {history}; resumes {resumes}; ledger {ledger}")
    return found


def check_runs(workflows: dict[str, str], runs: dict[str, Run],
               histories: dict[str, list[dict[str, Any]]], answers: list[Answer]
               ) -> tuple[list[str], Counter[str]]:
    """Every run completed with the right outputs; every suspension taken by exactly one
    acknowledged resume, whose data is the one applied, once (or, none acknowledged, by one
    whose answer was lost and whose retry was refused); no history event doubled."""
    problems: list[str] = []
    counts: Counter[str] = Counter()
    acked: dict[str, list[Answer]] = defaultdict(list)
    lost: dict[str, list[Answer]] = defaultdict(list)  # refused after an unclear answer
    for answer in answers:
        counts[f"resumes {answer.via} {'acknowledged' if answer.acked else 'refused'}"] += 1
        if answer.acked:
            acked[answer.run_id].append(answer)
        elif answer.refused and answer.after_error:
            lost[answer.run_id].append(answer)
    for run_id, workflow in sorted(workflows.items()):
        run, history = runs[run_id], histories[run_id]
        counts[f"{workflow} {run.status}"] += 1
        if run.status != "completed":
            problems.append(f"run {run_id} ({workflow}) ended {run.status}: {run.error}")
            continue
        problems += _history_problems(run_id, history)
        step = SUSPENSION.get(workflow)
        if step is None:
            problems += _timer_problems(run_id, workflow, run)
            continue
        mine = acked.get(run_id, [])
        resumed = [e for e in history if e["type"] == "resumed" and e["step"] == step]
        if not mine:  # one whose answer was lost (a retry of it was refused) may have applied
            mine = [a for a in lost.get(run_id, [])
                    if run.steps[step].resume_data == {"token": a.token}][:1]
            if mine:
                counts["resumes applied whose answer was lost (a retry refused)"] += 1
        if len(mine) != 1 or len(resumed) != 1:
            problems.append(f"run {run_id} step {step}: {len(mine)} acknowledged resume(s) "
                            f"({[(a.via, a.token) for a in mine]}), {len(resumed)} applied")
            continue
        token = mine[0].token
        applied = run.steps[step].resume_data
        used = run.steps["answer" if workflow == "ask" else "work"].output
        if applied != {"token": token} or used != token:
            problems.append(f"run {run_id} step {step}: acknowledged {token!r} ({mine[0].via}) "
                            f"but the run holds {applied!r} and its next step used {used!r}")
        if resumed[0].get("source") != mine[0].via:
            problems.append(f"run {run_id}: resumed by {mine[0].via} but history says "
                            f"{resumed[0].get('source')!r}")
    extra = set(acked) - set(workflows)
    if extra:
        problems.append(f"resumes acknowledged for runs never started: {sorted(extra)[:5]}")
    return problems, counts


def _history_problems(run_id: str, history: list[dict[str, Any]]) -> list[str]:
    """No step attempt started or completed twice, one `started` and one `completed`."""
    problems = []
    kinds = Counter(e["type"] for e in history)
    if kinds["started"] != 1 or kinds["completed"] != 1:
        problems.append(f"run {run_id}: history has {kinds['started']} started and "
                        f"{kinds['completed']} completed events")
    for kind in ("step_started", "step_completed"):
        twice = [key for key, n in Counter((e["step"], e.get("runs")) for e in history
                                           if e["type"] == kind).items() if n > 1]
        if twice:
            problems.append(f"run {run_id}: {kind} recorded twice for {twice}")
    return problems


def _timer_problems(run_id: str, workflow: str, run: Run) -> list[str]:
    """A rerun, a retry and a sleep each happened."""
    first = {"poll": "poll", "flaky": "flaky", "nap": "first"}[workflow]
    runs = run.steps[first].runs
    wanted = 1 if workflow == "nap" else 2
    if runs < wanted or run.steps["after"].output != "done":
        return [f"run {run_id} ({workflow}): step {first} ran {runs} time(s), after gave "
                f"{run.steps['after'].output!r}"]
    if workflow == "flaky" and run.steps["flaky"].output != "ok":
        return [f"run {run_id}: flaky's output is {run.steps['flaky'].output!r}"]
    if workflow == "nap" and run.steps["nap"].status != "completed":
        return [f"run {run_id}: its sleep is {run.steps['nap'].status}"]
    return []


def check_attempts(attempts: list[Attempt], workflows: dict[str, str], runs: dict[str, Run],
                   histories: dict[str, list[dict[str, Any]]], cuts: dict[int, list[float]],
                   cause: str = "kill", window: float = 0.0,
                   stalled: frozenset[int] = frozenset(), lease: float | None = None
                   ) -> tuple[list[str], dict[str, Any]]:
    """No step attempt executed twice, except by a process whose work was cut (`cuts`: process
    group -> the moments it was killed or its connections terminated) before the attempt was
    executed again, and at most `window` seconds before the attempt began (0 for a kill; a
    terminated connection may be found lost only when next used); the last attempt of every
    step is in the ledger; none went past it; every attempt history says was recovered was
    cut so, or begun by a process in `stalled` (one that said it lost its lease: it stalled
    past the lease, which SPEC §10 allows another to take over), or recovered at least `lease`
    seconds after it began (its process stalled that long, the renewals included, and may
    have been killed before it could say so; a step here takes a fraction of a second).
    Figures: attempts, those cut, and how long after the cut their run was recovered."""
    problems: list[str] = []
    by_key: dict[tuple[str, str, int], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_key[attempt.key].append(attempt)
    redone = 0
    for key, lines in by_key.items():
        redone += len(lines) - 1
        for earlier, later in pairwise(lines):
            if _cut(earlier, cuts, later.at, window) is None:
                problems.append(f"step attempt {key} executed {len(lines)} times, by process "
                                f"groups {[a.pgid for a in lines]}, the earlier not cut by a "
                                f"{cause} in between")
    last: dict[tuple[str, str], int] = {}
    for attempt in attempts:
        last[attempt.run_id, attempt.step] = max(attempt.runs,
                                                  last.get((attempt.run_id, attempt.step), 0))
    for run_id, workflow in workflows.items():
        run = runs[run_id]
        for step in CODE_STEPS[workflow]:
            state = run.steps.get(step)
            if state is None or state.status != "completed":
                continue
            if (run_id, step, state.runs) not in by_key:
                problems.append(f"run {run_id} step {step}: attempt {state.runs} completed but "
                                "the ledger has no such attempt")
            if last.get((run_id, step), 0) > state.runs:
                problems.append(f"run {run_id} step {step}: the ledger has attempt "
                                f"{last[run_id, step]}, the run says {state.runs}")
    cut, waits = _recoveries(by_key, histories, cuts, problems, cause, window, stalled, lease)
    figures = {
        "step attempts (ledger lines)": len(attempts),
        "attempts executed again with the same number": redone,
        f"attempts cut by a {cause} and recovered (in the ledger / before the step code ran)":
            f"{cut[0]} / {cut[1]}",
        f"{cause} -> recovered event, median / max (s)":
            f"{statistics.median(waits):.2f} / {max(waits):.2f}" if waits else "none",
    }
    return problems, figures


def _cut(attempt: Attempt, cuts: dict[int, list[float]], until: float, window: float
         ) -> float | None:
    """The first moment the attempt's process was cut, by `until` and at most `window` seconds
    before the attempt began."""
    return next((m for m in sorted(cuts.get(attempt.pgid, ()))
                 if attempt.at - window <= m <= until), None)


def _recoveries(by_key: dict[tuple[str, str, int], list[Attempt]],
                histories: dict[str, list[dict[str, Any]]], cuts: dict[int, list[float]],
                problems: list[str], cause: str, window: float, stalled: frozenset[int],
                lease: float | None) -> tuple[tuple[int, int], list[float]]:
    """The attempts history says were recovered: each must have been begun by a process cut
    before the recovery (or not have reached the step's code). (How many had begun, how many
    had not), and the seconds from each cut to the `recovered` event of the step it cut."""
    from wfrun.durations import parse_iso

    began = silent = 0
    waits = []
    for run_id, history in histories.items():
        for event in history:
            if event["type"] != "recovered" or not event.get("step"):
                continue
            lines = by_key.get((run_id, event["step"], event["runs"]), [])
            if not lines:
                silent += 1
                continue
            began += 1
            at = parse_iso(event["at"]).timestamp()
            moment = _cut(lines[0], cuts, at, window)
            if moment is None and (lines[0].pgid in stalled or (
                    lease is not None and at - lines[0].at >= lease)):
                continue  # its process stalled past its lease: taken over rightly
            if moment is None:
                problems.append(f"run {run_id} step {event['step']} attempt {event['runs']} "
                                f"was recovered, but process group {lines[0].pgid} that "
                                f"executed it was not cut by a {cause} in between")
                continue
            waits.append(at - moment)
    return (began, silent), waits
