"""The file store's run index (wfrun/store/_runindex.py): what `list`, `pending` and `prune`
read instead of every snapshot. Kept by the write path without an fsync of its own, checked
against the snapshots it names, corrected when it drifted (a crash, a power cut, a hand),
rebuilt when missing (a state directory an older wfrun made), also by processes at once."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project

from wfrun.cli._doctor import problem_line
from wfrun.model import COMPLETED, RUN_STATUSES, RUNNING, SUSPENDED, WAITING, Run
from wfrun.store import _runindex
from wfrun.store.file import FileStore

from ._runs import run_of


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "state")


def entries(store: FileStore) -> dict[str, list[str]]:
    """Each run's entries, as `STATUS/DAY/NAME`."""
    found: dict[str, list[str]] = {}
    index = Path(store.root) / "status"
    for path in sorted(index.glob("*/*/*")):
        if path.name.startswith("."):
            continue  # the blank file entries are hard links to
        run_id = path.name.split("~")[1]
        found.setdefault(run_id, []).append(str(path.relative_to(index)))
    return found


def expected(store: FileStore) -> dict[str, list[str]]:
    """The entry each readable run's snapshot asks for."""
    wanted = {}
    for run in store.iter_runs():
        assert isinstance(run, Run)
        day, name = _runindex.entry_of(run)
        wanted[run.run_id] = [f"{run.status}/{day}/{name}"]
    return wanted


def save_as(store: FileStore, run_id: str, status: str) -> None:
    """Change a stored run's status as the engine does (under its lock)."""
    with store.lock(run_id):
        run = store.load(run_id)
        changed = run_of(run_id, status, day=int(run.created_at[8:10]), workflow=run.workflow)
        changed.revision = run.revision
        store.save(changed)


def test_each_run_has_one_entry_named_for_what_list_filters_on(store: FileStore) -> None:
    store.create(run_of("r1", RUNNING, day=3, workflow="expense-approval"))
    store.create(run_of("kid", SUSPENDED, day=4, parent="r1"))
    assert entries(store) == {
        "kid": ["suspended/2026-01-04/2026-01-04T00:00:00.000Z~kid~wf~c"],
        "r1": ["running/2026-01-03/2026-01-03T00:00:00.000Z~r1~expense-approval~t"]}
    for status in (SUSPENDED, WAITING, RUNNING, COMPLETED):
        save_as(store, "r1", status)
        assert entries(store)["r1"] == [
            f"{status}/2026-01-03/2026-01-03T00:00:00.000Z~r1~expense-approval~t"]
    assert (Path(store.root) / "status" / "complete").is_file()
    modes = {p.stat().st_mode & 0o777 for p in (Path(store.root) / "status").rglob("*")}
    assert modes <= {0o600, 0o700}


def test_entries_are_names_of_one_blank_file_not_new_inodes(store: FileStore) -> None:
    """An entry is a hard link to its directory's blank file: a status change costs a new
    name, not a new inode (which costs more than an fsync on some file systems)."""
    for n in range(3):
        store.create(run_of(f"r{n}", SUSPENDED, day=3))
    day = Path(store.root) / "status" / SUSPENDED / "2026-01-03"
    blank = os.stat(day / _runindex.BLANK)
    assert {os.stat(p).st_ino for p in day.iterdir()} == {blank.st_ino}
    assert blank.st_nlink == 4 and blank.st_size == 0


def test_a_blank_file_with_all_its_links_is_replaced(store: FileStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    store.create(run_of("r0", SUSPENDED, day=3))
    day = Path(store.root) / "status" / SUSPENDED / "2026-01-03"
    old = os.stat(day / _runindex.BLANK).st_ino
    real_link, refused = os.link, []

    def link(src: str, dst: str) -> None:
        if not refused and "/status/" in dst:  # the file system's link limit (ext4: 65,000)
            refused.append(dst)  # reached once (by the run index's blank: due entries link too)
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK))
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    store.create(run_of("r1", SUSPENDED, day=3))
    assert refused and os.stat(day / _runindex.BLANK).st_ino != old
    assert sorted(entries(store)) == ["r0", "r1"]
    assert [p.name for p in day.iterdir() if p.name.startswith(".")] == [_runindex.BLANK]


def test_odd_workflow_names_and_times_still_make_one_file_name(store: FileStore) -> None:
    odd = run_of("r1", SUSPENDED, workflow="a b/c~d.." + "x" * 200)
    odd.created_at = "../" + "9" * 60
    store.create(odd)
    store.create(run_of("r2", SUSPENDED, workflow=".hidden"))
    (name,) = entries(store)["r1"]
    assert name.count("/") == 2 and "~" not in name.split("/")[1]
    assert [r.workflow for r in store.find_runs(workflow=odd.workflow).runs] == [odd.workflow]
    assert [r.run_id for r in store.find_runs(workflow=".hidden").runs] == ["r2"]


def test_a_status_change_writes_no_extra_fsync(store: FileStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry moves with the snapshot write's own fsyncs: a save that changes the run's
    status costs exactly the fsyncs of one that does not."""
    store.create(run_of("same", SUSPENDED))
    store.create(run_of("moves", SUSPENDED))
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    with store.lock("same"):
        run = store.load("same")
        run.updated_at = "2026-01-01T00:00:05.000Z"
        store.save(run)
    unchanged = len(calls)
    calls.clear()
    save_as(store, "moves", COMPLETED)
    assert len(calls) == unchanged > 0


def test_queries_read_only_the_snapshots_they_answer_with(
        store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(200):
        store.create(run_of(f"r{i:03d}", SUSPENDED if i % 20 == 0 else COMPLETED,
                            day=1 + i % 28, second=i % 60))
    reads: list[str] = []
    real = FileStore.load

    def counting(self: FileStore, run_id: str) -> Run:
        reads.append(run_id)
        return real(self, run_id)

    monkeypatch.setattr(FileStore, "load", counting)
    page = FileStore(store.root).find_runs(limit=20)
    assert len(page.runs) == 20 and page.more == 180 and len(reads) == 20
    reads.clear()
    suspended = FileStore(store.root).find_runs(statuses=[SUSPENDED])
    assert len(suspended.runs) == 10 and sorted(reads) == sorted(r.run_id for r in suspended.runs)
    reads.clear()
    runs, _ = FileStore(store.root).pending()
    assert len(runs) == 10 and len(reads) == 10


def test_more_is_counted_from_the_names_and_cached_per_day(
        store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(60):
        store.create(run_of(f"r{i:02d}", COMPLETED, day=1 + i % 10, workflow=f"w{i % 3}"))
    settled = os.path.getmtime(store.root) - 10  # every day directory older than the cache's
    for day in (Path(store.root) / "status" / "completed").iterdir():  # settling time
        os.utime(day, (settled, settled))
    assert FileStore(store.root).find_runs(limit=5).more == 55
    counts = Path(store.root) / "status" / "counts.json"
    assert counts.is_file()
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: (listed.append(str(p)), real(p))[1])
    assert FileStore(store.root).find_runs(limit=5, workflow="w1").more == 15
    days = sorted(Path(p).name for p in listed if "/completed/" in p)
    # the newest days, whose names fill the page (2 runs of w1 a day); the 7 others' counts
    # came from the cache
    assert days == ["2026-01-08", "2026-01-09", "2026-01-10"], days
    monkeypatch.setattr(os, "listdir", real)
    counts.write_text("{not json")  # a damaged cache is only a cache
    assert FileStore(store.root).find_runs(limit=5).more == 55
    store.create(run_of("late", COMPLETED, day=2))  # a day directory changed: counted again
    assert FileStore(store.root).find_runs(limit=5).more == 56


def test_an_entry_left_by_a_crash_is_skipped_and_corrected(store: FileStore) -> None:
    for i in range(30):
        store.create(run_of(f"r{i:02d}", SUSPENDED, day=1 + i % 5))
    # killed between the new status's entry and the snapshot write: the snapshot still says
    # suspended; and killed between a new run's entry and its first snapshot
    day, name = _runindex.entry_of(run_of("r07", SUSPENDED, day=3))
    store._touch_entry((COMPLETED, day, name))
    ghost = run_of("ghost", SUSPENDED, day=5)
    store._touch_entry((SUSPENDED, *_runindex.entry_of(ghost)))
    reader = FileStore(store.root)
    assert [r.run_id for r in reader.find_runs(statuses=[COMPLETED]).runs] == []
    assert "ghost" not in [r.run_id for r in reader.find_runs(limit=40).runs]
    assert reader.find_runs(limit=40).problems == []
    assert entries(store) == expected(store)  # both corrected, under the runs' locks
    assert not (Path(store.root) / "locks" / "ghost.lock").exists()


def test_a_run_whose_entry_was_lost_is_found_again(store: FileStore) -> None:
    """A power cut can lose an entry (its directory is never fsynced). A query that reads every
    run anyway also lists runs/ and gives it back its entry; in a larger store, doctor says
    so, and deleting status/complete has the next query rebuild the index."""
    store.create(run_of("lost", SUSPENDED, day=2))
    store.create(run_of("kept", SUSPENDED, day=1))
    (entry,) = entries(store)["lost"]
    (Path(store.root) / "status" / entry).unlink()
    assert [r.run_id for r in FileStore(store.root).find_runs().runs] == ["lost", "kept"]
    assert entries(store) == expected(store)

    for i in range(10):
        store.create(run_of(f"other{i}", COMPLETED, day=3))
    (entry,) = entries(store)["lost"]
    (Path(store.root) / "status" / entry).unlink()
    assert [r.run_id for r in FileStore(store.root).find_runs(statuses=[SUSPENDED]).runs] \
        == ["kept"]  # 1 of 11 runs read: runs/ is not listed
    count, problems = FileStore(store.root).check()
    assert count == 12
    assert [(p["kind"], p["path"]) for p in problems] == [
        ("index", str(Path(store.root) / "status" / entry))]
    assert "status/complete" in problems[0]["reason"]
    assert problem_line(problems[0]).startswith(
        f"run-index entry {Path(store.root) / 'status' / entry} is missing, so list and pending "
        "may not show that suspended run; ")
    (Path(store.root) / "status" / "complete").unlink()
    assert [r.run_id for r in FileStore(store.root).find_runs(statuses=[SUSPENDED]).runs] \
        == ["lost", "kept"]
    assert entries(store) == expected(store)
    assert FileStore(store.root).check() == (12, [])


def test_doctor_reports_drift_and_changes_nothing(store: FileStore) -> None:
    for i in range(5):
        store.create(run_of(f"r{i}", SUSPENDED, day=1 + i))
    index = Path(store.root) / "status"
    stale = index / "completed" / "2026-01-02" / "2026-01-02T00:00:00.000Z~r1~wf~t"
    stale.parent.mkdir(mode=0o700, parents=True)
    stale.touch(mode=0o600)
    gone = index / "running" / "2026-01-09" / "2026-01-09T00:00:00.000Z~nobody~wf~t"
    gone.parent.mkdir(mode=0o700, parents=True)
    gone.touch(mode=0o600)
    (index / "notes").mkdir()
    before = {p: p.read_bytes() for p in Path(store.root).rglob("*") if p.is_file()}
    _, problems = FileStore(store.root).check()
    assert {(p["kind"], p["path"]) for p in problems} == {
        ("index", str(stale)), ("index", str(gone)), ("index", str(index / "notes"))}
    # an entry no query takes (of no run, or under another status) is harmless: a note
    assert sorted(p["path"] for p in problems if p.get("severity") == "note") == sorted(
        [str(stale), str(gone)])
    assert all("\n" not in p["reason"] for p in problems)
    assert {p: p.read_bytes() for p in Path(store.root).rglob("*") if p.is_file()} == before
    # doctor's lines name each entry once, and the run only in it (its path holds the run id)
    lines = sorted(problem_line(p) for p in problems if p["path"] != str(index / "notes"))
    how = ("; queries skip it; `wfrun list` and `wfrun pending` correct the entries they come "
           f"across; to rebuild the whole index, delete {index / 'complete'}")
    assert lines == sorted([
        f"run-index entry {stale} is under completed, but that run is suspended{how}",
        f"run-index entry {gone} is under running, but there is no such run{how}"])


def test_a_state_dir_without_index_is_indexed_on_first_use(tmp_path: Path) -> None:
    """State directories made before the index: the first query rebuilds it, and answers as
    it did; one with no runs/ yet gets nothing written."""
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    assert FileStore(empty).find_runs().runs == [] and list(empty.iterdir()) == []
    store = FileStore(tmp_path / "state")
    for i in range(12):
        store.create(run_of(f"r{i:02d}", (SUSPENDED, COMPLETED, WAITING)[i % 3], day=1 + i,
                            parent="r00" if i == 7 else None))
    before = [FileStore(store.root).find_runs(top_level=False), FileStore(store.root).pending()]
    shutil.rmtree(Path(store.root) / "status")
    after = [FileStore(store.root).find_runs(top_level=False), FileStore(store.root).pending()]
    assert [r.run_id for r in after[0].runs] == [r.run_id for r in before[0].runs]
    assert sorted(r.run_id for r in after[1][0]) == sorted(r.run_id for r in before[1][0])
    assert (Path(store.root) / "status" / "complete").is_file()
    assert entries(store) == expected(store)


def _rebuild(root: str, go: object) -> None:
    go.wait(10)  # type: ignore[attr-defined]
    FileStore(root).find_runs(limit=1)


def _churn(root: str, run_ids: list[str], go: object) -> None:
    store = FileStore(root)
    go.wait(10)  # type: ignore[attr-defined]
    for n in range(3):
        for run_id in run_ids:
            save_as(store, run_id, (COMPLETED, WAITING, SUSPENDED)[(n + hash(run_id)) % 3])


def test_processes_rebuilding_at_once_while_runs_change_leave_an_exact_index(
        store: FileStore) -> None:
    run_ids = [f"r{i:03d}" for i in range(150)]
    for i, run_id in enumerate(run_ids):
        store.create(run_of(run_id, SUSPENDED, day=1 + i % 20))
    shutil.rmtree(Path(store.root) / "status")  # as an older wfrun left it
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    workers = [ctx.Process(target=_rebuild, args=(store.root, go)) for _ in range(3)]
    workers += [ctx.Process(target=_churn, args=(store.root, run_ids[k::2], go))
                for k in range(2)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert (Path(store.root) / "status" / "complete").is_file()
    assert entries(store) == expected(store)
    for status in RUN_STATUSES:
        assert sorted(r.run_id for r in FileStore(store.root).find_runs(statuses=[status]).runs) \
            == sorted(r for r, e in expected(store).items() if e[0].startswith(status + "/"))


def test_an_entry_that_cannot_be_made_leaves_the_previous_state(
        store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.errors import StateError

    store.create(run_of("r1", SUSPENDED))
    before = Path(store.snapshot_path("r1")).read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileStore, "_touch_entry", full)
    with pytest.raises(StateError, match="previous state is intact"):
        save_as(store, "r1", COMPLETED)
    assert Path(store.snapshot_path("r1")).read_bytes() == before
    monkeypatch.undo()
    assert [r.status for r in FileStore(store.root).find_runs().runs] == [SUSPENDED]


def test_list_and_pending_answer_alike_from_an_index_an_older_wfrun_never_made(
        project: Project) -> None:
    project.workflow("gate", """
        steps:
          - id: ok
            wait: true
          - id: after
    """, "def after(ctx):\n    return 1\n")
    for i in range(4):
        assert project.run("start", "gate", "--run-id", f"g{i}").code == 0
    assert project.run("resume", "g1", "--data", "{}").code == 0
    outputs: Callable[[], list[str]] = lambda: [  # noqa: E731
        project.run(*args).stdout for args in (
            ["list"], ["list", "--json"], ["list", "--status", "suspended", "--json"],
            ["pending", "--json"], ["pending"], ["list", "--limit", "2"])]
    before = outputs()
    shutil.rmtree(project.state / "status")
    assert outputs() == before
    assert "g1" not in before[3] and '"g3"' in before[3]
    assert project.run("doctor").code == 0



def test_summaries_are_cached_while_their_snapshots_are_unchanged(
        store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(12):
        store.create(run_of(f"r{i:02d}", SUSPENDED, day=1 + i % 4))
    first = FileStore(store.root).find_runs(statuses=[SUSPENDED])
    reads: list[str] = []
    real = FileStore.load

    def counting(self: FileStore, run_id: str) -> Run:
        reads.append(run_id)
        return real(self, run_id)

    monkeypatch.setattr(FileStore, "load", counting)
    assert FileStore(store.root).find_runs(statuses=[SUSPENDED]).runs == first.runs
    assert len(reads) == 12  # written just now: a write within the mtime's granularity could
    reads.clear()            # leave inode, mtime and size as they are, so nothing was cached
    settled = time.time() - 10
    for path in [*Path(store.root, "runs").glob("*.json"), *Path(store.root, "locks").iterdir()]:
        os.utime(path, (settled, settled))
    assert FileStore(store.root).find_runs(statuses=[SUSPENDED]).runs == first.runs
    assert len(reads) == 12
    reads.clear()
    again = FileStore(store.root).find_runs(statuses=[SUSPENDED])
    assert again.runs == first.runs and reads == []  # every summary from the cache
    save_as(store, "r05", WAITING)  # changed by a write: read again
    corrupt = Path(store.snapshot_path("r07"))  # changed by a hand: read, and reported
    corrupt.write_bytes(corrupt.read_bytes().replace(b'"wf"', b'"wx"'))
    page = FileStore(store.root).find_runs(statuses=[SUSPENDED])
    assert sorted(reads) == ["r05", "r07"]
    assert [r.run_id for r in page.runs] == [r.run_id for r in first.runs
                                             if r.run_id not in ("r05", "r07")]
    assert len(page.problems) == 1 and "r07.json" in str(page.problems[0])
    assert [r.status for r in FileStore(store.root).find_runs(workflow="wf").runs
            if r.run_id == "r05"] == [WAITING]
    for cache in (Path(store.root) / "status" / "summaries").iterdir():
        cache.write_text('{"r00": [1, 2], "r01": "x"}')  # damaged: only a cache
    reads.clear()
    assert FileStore(store.root).find_runs(statuses=[SUSPENDED]).runs == page.runs
    assert len(reads) == 11
