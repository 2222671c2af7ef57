"""Two threads of one process on one PostgreSQL run: one gives its claim up with the run's last
save (`save` with `release`), the other waits for the run's state lock to save a change of its own
(as `wfrun serve` does: a background worker suspends the run while a request thread records
its resume). The lock is free the moment the first save commits; the second save must then not
be refused as if a lease had been lost (found by the 1,000-run proof: a resume answered 409
"lost its lease" and never applied, its run left suspended)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import _pg

from wfrun.clock import SystemClock
from wfrun.engine import Engine
from wfrun.errors import WfrunError
from wfrun.store.postgres import PostgresStore


def _slowly(call: Callable[[], None]) -> Callable[[], None]:
    def later() -> None:
        time.sleep(0.3)  # what follows the commit, delayed: the other thread saves meanwhile
        call()

    return later


def test_a_save_right_after_another_threads_save_with_release_is_not_refused(
    tmp_path: Path
) -> None:
    (tmp_path / "hold.yaml").write_text("steps:\n  - id: wait\n    wait: true\n")
    with _pg.schema() as url:
        store = PostgresStore(url)
        run_id = Engine(store=store, workflows_dir=tmp_path,
                        clock=SystemClock()).start("hold").run.run_id
        claim = store.claim(run_id)
        assert claim is not None
        claim.ended_with_save = _slowly(claim.ended_with_save)  # type: ignore[method-assign]
        waiting, failures, saved = threading.Event(), [], []

        def other() -> None:
            waiting.set()
            try:
                with store.lock(run_id):  # free once the claim's save commits
                    run = store.load(run_id)
                    store.save(run)
                    saved.append(run.revision)
            except WfrunError as exc:
                failures.append(exc.message)

        thread = threading.Thread(target=other)
        try:
            with store.lock(run_id):
                run = store.load(run_id)
                thread.start()
                waiting.wait(5)
                time.sleep(0.1)  # the other thread now waits for the lock
                store.save(run, release=claim)
            thread.join(10)
            assert failures == [] and saved == [run.revision + 1], (failures, saved)
            assert store.load(run_id).revision == run.revision + 1
            assert not store.is_claimed(run_id)
        finally:
            thread.join(10)
            store.close()
