"""Load for the PostgreSQL proofs: runs started over HTTP, suspensions resumed over HTTP (the
link a step logged, or the one `wfrun show --json` prints) and with `wfrun resume`, every
answer kept, so that the checks (`_pgverify`) can hold each acknowledged resume to exactly one
application."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from ._pgfleet import Fleet
from ._pgproject import read_ledger
from ._relutil import HERE, REPO, Warm


class PgWarm(Warm):
    """The suite's pre-imported launcher of `wfrun` processes, with the PostgreSQL store loaded."""

    def __init__(self) -> None:  # (Warm's, with another script)
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_pgwarm.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=REPO)
        self._lock = threading.Lock()


@dataclass
class Answer:
    """What one resume got back."""

    run_id: str
    step: str
    token: str
    via: str  # "http" or "cli"
    code: int  # the HTTP status (-1: no answer) or the exit code
    body: str
    at: float
    after_error: bool = False  # an earlier try of this same resume got no clear answer

    @property
    def acked(self) -> bool:
        return self.code == (202 if self.via == "http" else 0)

    @property
    def refused(self) -> bool:
        return self.code in ((404, 409) if self.via == "http" else (3,))

    @property
    def unclear(self) -> bool:
        """No answer, a server error (5xx) or a state error (exit 5): it may have applied."""
        return self.code == -1 or self.code >= 500 if self.via == "http" else self.code == 5


def post(url: str, body: Any, headers: dict[str, str] | None = None,
         timeout: float = 60) -> tuple[int, str]:
    """POST JSON; the status and body (-1 and the reason when no answer came)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        return -1, f"{type(exc).__name__}: {exc}"


TRIES = 20  # how often a patient client sends a request that got no clear answer


class Load:
    """Starts and resumes runs through the fleet's servers and `wfrun resume` processes.

    A patient load sends a request that got no clear answer again (the same data: a resume
    with the same token, a start with the same Idempotency-Key), as a client should while the
    database drops connections, and keeps each unclear answer's text in `unclear`; an impatient
    one counts it as an error."""

    def __init__(self, fleet: Fleet, bases: list[str], seed: int, http_threads: int = 4,
                 launchers: int = 2, patient: bool = False) -> None:
        self.fleet, self.bases, self.patient = fleet, bases, patient
        self.unclear: list[str] = []
        self.rng = random.Random(seed)
        self.answers: list[Answer] = []
        self.errors: list[str] = []  # what went wrong in a way no resume should
        self.runs: dict[str, str] = {}  # run id -> workflow
        self._mutex = threading.Lock()
        self._http = ThreadPoolExecutor(http_threads, thread_name_prefix="http")
        self._warm = [PgWarm() for _ in range(launchers)]
        self._free: list[PgWarm] = list(self._warm)
        self._cli = ThreadPoolExecutor(launchers, thread_name_prefix="cli")
        self.futures: list[Future[Any]] = []
        self.retries = 0  # requests sent again after no answer or a 5xx (same key or token)
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop: no request is sent any more (one being sent ends), then the launchers go."""
        self._closed.set()
        self._http.shutdown(wait=True, cancel_futures=True)
        self._cli.shutdown(wait=True, cancel_futures=True)
        for warm in self._warm:
            warm.close()

    # -- starting ----------------------------------------------------------------------------

    def tokens(self, workflows: list[str]) -> dict[str, str]:
        """A start token per workflow (`wfrun token create`)."""
        made = {}
        for name in workflows:
            out = self.cli(["token", "create", "--workflow", name])
            assert out["rc"] == 0, out
            made[name] = out["stdout"].strip()
        return made

    def start(self, workflow: str, token: str, key: str) -> None:
        """POST /workflows/W/runs through a random server until a 202 (the Idempotency-Key
        makes a retried start the same run)."""
        for _ in range(TRIES):
            if self._closed.is_set():
                return
            code, body = post(f"{self.rng.choice(self.bases)}/workflows/{workflow}/runs",
                              {"n": key}, {"Authorization": f"Bearer {token}",
                                           "Idempotency-Key": key})
            if code == 202:
                with self._mutex:
                    self.runs[json.loads(body)["run_id"]] = workflow
                return
            if not (code == -1 or code >= 500) or not self._again(f"start: {code} {body}"):
                self._error(f"start {workflow} {key}: {code} {body[:300]}")
                return
        self._error(f"start {workflow} {key} never got 202")

    def start_all(self, plan: list[str], tokens: dict[str, str]) -> None:
        """Start every run of `plan` (workflow names), several at a time; wait for the 202s."""
        with ThreadPoolExecutor(2, thread_name_prefix="start") as starters:
            done = list(starters.map(lambda item: self.start(item[1], tokens[item[1]],
                                                             f"run-{item[0]}"), enumerate(plan)))
        assert len(done) == len(plan)

    # -- resuming ----------------------------------------------------------------------------

    def resume_http(self, run_id: str, step: str, link: str, token: str,
                    base: str | None = None) -> Answer:
        """POST the link's path to a server (a random one unless `base`)."""
        parts = urlsplit(link)
        for n in range(TRIES):
            url = f"{base or self.rng.choice(self.bases)}{parts.path}?{parts.query}"
            code, body = post(url, {"token": token})
            answer = Answer(run_id, step, token, "http", code, body, time.time(), n > 0)
            if not (answer.unclear and self._again(f"resume: {code} {body}")):
                break
        return self._answer(answer)

    def resume_cli(self, run_id: str, step: str, token: str) -> Answer:
        """`wfrun resume RUN --step STEP --data {"token": ...}` as a process."""
        for n in range(TRIES):
            out = self.cli(["resume", run_id, "--step", step, "--data",
                            json.dumps({"token": token}), "--json"])
            answer = Answer(run_id, step, token, "cli", out["rc"], out["stdout"] + out["stderr"],
                            time.time(), n > 0)
            if not (answer.unclear and self._again(f"resume: exit 5: {out['stderr']}")):
                break
        return self._answer(answer)

    def link_of(self, run_id: str, step: str) -> str | None:
        """The resume URL `wfrun show RUN --json` prints for a suspended step."""
        for _ in range(TRIES):
            out = self.cli(["show", run_id, "--json"])
            if not (out["rc"] == 5 and self._again(f"show: exit 5: {out['stderr']}")):
                break
        if out["rc"] != 0:
            self._error(f"show {run_id}: exit {out['rc']}: {out['stderr'][:300]}")
            return None
        for item in json.loads(out["stdout"])["suspended"]:
            if item["step"] == step:
                return str(item["resume_url"])
        return None

    def later(self, via: str, work: Any, *args: Any) -> None:
        """Do `work(*args)` on the HTTP or the CLI threads."""
        pool = self._http if via == "http" else self._cli
        future = pool.submit(self._guard, work, *args)
        with self._mutex:
            self.futures.append(future)

    def busy(self) -> bool:
        with self._mutex:
            return any(not f.done() for f in self.futures)

    def cli(self, args: list[str]) -> dict[str, Any]:
        """A `wfrun` command forked from a free pre-imported launcher."""
        with self._mutex:
            warm = self._free.pop() if self._free else None
        if warm is None:  # (every launcher is busy: a cold process)
            proc = self.fleet.cli(*args)
            return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        try:
            return warm.request({"args": ["--store", self.fleet.url, "--workflows-dir",
                                          str(self.fleet.workflows), *args],
                                 "env": self.fleet.env()})
        finally:
            with self._mutex:
                self._free.append(warm)

    # -- bookkeeping -------------------------------------------------------------------------

    def _guard(self, work: Any, *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # a bug of the harness must fail the test, not vanish
            self._error(f"{work.__name__}{args}: {type(exc).__name__}: {exc}")

    def _answer(self, answer: Answer) -> Answer:
        with self._mutex:
            self.answers.append(answer)
        if not (answer.acked or answer.refused):
            self._error(f"{answer.via} resume of {answer.run_id} step {answer.step}: "
                        f"{answer.code} {answer.body.strip()[:300]}")
        return answer

    def _again(self, what: str) -> bool:
        """For a patient load: keep `what` (an unclear answer), wait a moment and say to try
        again; for an impatient one, False."""
        if not self.patient or self._closed.is_set():
            return False
        with self._mutex:
            self.retries += 1
            self.unclear.append(what)
        time.sleep(0.3)
        return True

    def _error(self, what: str) -> None:
        with self._mutex:
            self.errors.append(what)


class Watch:
    """One connection of the test's own to the database, to see how far the runs are."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def statuses(self) -> dict[str, int]:
        """How many runs the database holds in each status."""
        return {status: count for status, count in self.conn.execute(
            "SELECT status, count(*) FROM wfrun_runs GROUP BY status").fetchall()}

    def suspended(self, workflow: str) -> list[str]:
        """The runs of `workflow` that have a suspended step now."""
        return [row[0] for row in self.conn.execute(
            "SELECT run_id FROM wfrun_runs WHERE workflow = %s AND suspended ORDER BY run_id",
            [workflow]).fetchall()]


def ledger_links(path: Path, seen: set[str]) -> dict[str, str]:
    """The first link each run's `ask` step logged, for runs not in `seen`."""
    links: dict[str, str] = {}
    for attempt in read_ledger(path):
        if attempt.step == "ask" and attempt.note.startswith("http") and \
                attempt.run_id not in seen and attempt.run_id not in links:
            links[attempt.run_id] = attempt.note
    return links
