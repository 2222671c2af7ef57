"""`wfrun.testing` drives events too: an event sent before the wait is kept and taken later."""

from __future__ import annotations

from pathlib import Path

from wfrun.testing import Harness

REPO = Path(__file__).resolve().parents[2]


def test_the_harness_sends_an_event_before_and_after_the_wait(tmp_path: Path) -> None:
    h = Harness(workflows_dir=REPO / "workflows", state_dir=tmp_path / "state")
    run = h.start("payment-order", {"order": "o-1", "amount": 10})
    run_id = run["run_id"]
    early = h.send(run_id, "payment-received", {"amount": 10, "reference": "pay-1"})  # nobody waits yet: kept
    assert [e["name"] for e in early["inbox"]] == ["payment-received"]
    assert early["sent"] == {"event": "payment-received", "status": "kept", "step": None}  # as send --json
    done = h.resume(run_id, {"parcel": "P-1"}, step="pack")  # the wait takes it at once
    assert "inbox" not in done
    assert done["steps"]["await-payment"]["resume_data"] == {"amount": 10, "reference": "pay-1"}
    assert done["status"] == "completed", done


def test_send_says_which_step_took_the_event(tmp_path: Path) -> None:
    h = Harness(workflows_dir=REPO / "workflows", state_dir=tmp_path / "state")
    run_id = h.start("payment-order", {"order": "o-1", "amount": 10})["run_id"]
    h.resume(run_id, {"parcel": "P-1"}, step="pack")  # now await-payment waits for the event
    taken = h.send(run_id, "payment-received", {"amount": 10, "reference": "pay-1"})
    assert taken["sent"] == {"event": "payment-received", "status": "taken",
                             "step": "await-payment"}
