"""The Store contract for schedule states (`schedule_state`, `save_schedule_state`), run against
every store (conftest.py); the file store's own files are tested in test_file_store.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from wfrun.errors import ConflictError, UsageError
from wfrun.store.abc import Store


def test_a_schedule_with_no_state_reads_as_none(open_store: Callable[[], Store]) -> None:
    assert open_store().schedule_state("daily-report") == (None, 0)


def test_a_saved_state_reads_back_with_its_revision_in_another_store(
        open_store: Callable[[], Store]) -> None:
    state = {"through": "2026-03-02T09:00:00.000Z", "last_run": "sched-w-20260302T0900Z",
             "paused": False, "skip": {"fire": None, "n": 1.5}, "name": "Zoë"}
    assert open_store().save_schedule_state("w", state, 0) == 1
    assert open_store().schedule_state("w") == (state, 1)
    assert open_store().save_schedule_state("w", {**state, "paused": True}, 1) == 2
    assert open_store().schedule_state("w") == ({**state, "paused": True}, 2)
    assert open_store().schedule_state("other") == (None, 0)


@pytest.mark.parametrize("expected", [0, 2, 7])
def test_a_save_with_a_stale_revision_is_refused_and_writes_nothing(
        open_store: Callable[[], Store], expected: int) -> None:
    open_store().save_schedule_state("w", {"n": 1}, 0)
    with pytest.raises(ConflictError):
        open_store().save_schedule_state("w", {"n": 2}, expected)
    assert open_store().schedule_state("w") == ({"n": 1}, 1)


def test_of_concurrent_saves_with_one_revision_exactly_one_wins(
        open_store: Callable[[], Store]) -> None:
    """Six store objects (as six processes would) save at once, each in a thread of its own."""
    open_store().save_schedule_state("w", {"winner": None}, 0)
    stores = [open_store() for _ in range(6)]
    barrier = threading.Barrier(6)
    outcomes: dict[int, bool] = {}

    def save_once(n: int) -> None:
        barrier.wait()
        try:
            stores[n].save_schedule_state("w", {"winner": n}, 1)
        except ConflictError:
            outcomes[n] = False
        else:
            outcomes[n] = True

    threads = [threading.Thread(target=save_once, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [n for n, won in outcomes.items() if won]
    assert len(outcomes) == 6 and len(winners) == 1
    assert open_store().schedule_state("w") == ({"winner": winners[0]}, 2)


@pytest.mark.parametrize("name", ["", "Caps", "../x", "a/b", "-x", "x.y"])
def test_an_invalid_workflow_name_is_refused(open_store: Callable[[], Store], name: str) -> None:
    with pytest.raises(UsageError):
        open_store().schedule_state(name)
    with pytest.raises(UsageError):
        open_store().save_schedule_state(name, {}, 0)


def test_a_long_workflow_name_is_kept_apart_from_its_neighbours(
        open_store: Callable[[], Store]) -> None:
    one, two = "a" * 300 + "1", "a" * 300 + "2"
    open_store().save_schedule_state(one, {"n": 1}, 0)
    open_store().save_schedule_state(two, {"n": 2}, 0)
    assert open_store().schedule_state(one) == ({"n": 1}, 1)
    assert open_store().schedule_state(two) == ({"n": 2}, 1)
