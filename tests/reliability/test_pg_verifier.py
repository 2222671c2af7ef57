"""The PostgreSQL proofs' own checks (`_pgverify.check_attempts`): which recoveries of a step
attempt they accept, so that relaxing them for a stalled process keeps catching early
takeovers. No database: ledgers and histories are written here."""

from __future__ import annotations

from datetime import UTC, datetime

from wfrun.model import Run, StepState

from ._pgproject import Attempt
from ._pgverify import check_attempts

BEGAN = 1_800_000_000.0  # when the first attempt began (unix time)
LEASE = 2.0


def _recovered(after: float, *, cuts: dict[int, list[float]] | None = None,
               stalled: frozenset[int] = frozenset()) -> list[str]:
    """The problems found when process group 11's attempt 1 of run r's step `poll` is
    recovered `after` seconds after it began, and attempt 2 is executed by group 22."""
    attempts = [Attempt("r", "poll", 1, 11, 111, BEGAN, ""),
                Attempt("r", "poll", 2, 22, 222, BEGAN + after + 0.01, "")]
    at = datetime.fromtimestamp(BEGAN + after, UTC).isoformat().replace("+00:00", "Z")
    history = [{"at": at, "type": "recovered", "step": "poll", "runs": 1}]
    run = Run("r", "poll", None, at, at, status="completed",
              steps={"poll": StepState(status="completed", runs=2),
                     "after": StepState(status="pending")})
    problems, _ = check_attempts(attempts, {"r": "poll"}, {"r": run}, {"r": history},
                                 cuts or {}, stalled=stalled, lease=LEASE)
    return problems


def test_a_recovery_before_the_lease_ran_out_of_an_uncut_process_is_a_problem() -> None:
    problems = _recovered(LEASE - 0.5)
    assert len(problems) == 1 and "was not cut by a kill" in problems[0], problems


def test_a_recovery_of_a_killed_process_is_accepted() -> None:
    assert _recovered(0.5, cuts={11: [BEGAN + 0.2]}) == []


def test_a_recovery_of_a_process_that_said_it_lost_its_lease_is_accepted() -> None:
    assert _recovered(0.5, stalled=frozenset({11})) == []


def test_a_recovery_a_full_lease_after_the_attempt_began_is_a_stall_and_accepted() -> None:
    # its process stalled past the lease (renewals too) and may be killed before saying so
    assert _recovered(LEASE + 0.1) == []
