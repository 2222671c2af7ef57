"""`durable_replace`: the snapshot write that reuses the previous version's inode (issue 4).

Each test sets up the names an interrupted write can leave and checks that the next write
lands whole, tidies them, and never writes into a file that is (or may be) live."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from wfrun.errors import StateError
from wfrun.model import Run
from wfrun.store import _appends, _fsops
from wfrun.store.abc import Durability
from wfrun.store.file import FileStore


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def spares(directory: Path) -> list[str]:
    return [n for n in names(directory) if n.endswith((".spare", ".prev"))]


def test_versions_alternate_between_two_inodes_and_no_file_is_created(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    _fsops.durable_replace(str(target), b"v1")
    assert names(tmp_path) == ["r.json"]  # the first version: nothing to keep yet
    _fsops.durable_replace(str(target), b"v2")
    assert len(spares(tmp_path)) == 1 and target.read_bytes() == b"v2"
    inodes = {target.stat().st_ino, (tmp_path / spares(tmp_path)[0]).stat().st_ino}
    seen_names = set()
    for data in (b"version three", b"4", b"five", b"six"):  # "4": shorter, so truncated
        _fsops.durable_replace(str(target), data)
        assert target.read_bytes() == data and len(spares(tmp_path)) == 1
        spare = tmp_path / spares(tmp_path)[0]
        seen_names.add(spare.name)
        assert {target.stat().st_ino, spare.stat().st_ino} == inodes
        assert spare.stat().st_nlink == 1
    assert seen_names == {".r.json.spare", ".r.json.prev"}  # the two names take turns
    assert target.stat().st_mode & 0o777 == 0o600


def _forget_turns() -> None:
    """As a new process: no memory of which name the spare had."""
    _fsops._SPARES.clear()


@pytest.mark.parametrize("fresh_process", [False, True])
@pytest.mark.parametrize("versions", [2, 3])  # the spare under either name
def test_killed_after_linking_the_old_version(
    tmp_path: Path, fresh_process: bool, versions: int
) -> None:
    target = tmp_path / "r.json"
    for n in range(versions):
        _fsops.durable_replace(str(target), f"v{n}".encode())
    (spare,) = spares(tmp_path)
    other = ".r.json.prev" if spare == ".r.json.spare" else ".r.json.spare"
    (tmp_path / spare).write_bytes(b"next")  # killed here: the spare written, `path` linked
    os.link(target, tmp_path / other)  # as the other name, the rename not done
    if fresh_process:
        _forget_turns()
    _fsops.durable_replace(str(target), b"next")
    assert target.read_bytes() == b"next" and len(spares(tmp_path)) == 1
    assert (tmp_path / spares(tmp_path)[0]).stat().st_nlink == 1


def test_killed_after_the_swap_of_an_older_wfrun(tmp_path: Path) -> None:
    """An older wfrun renamed `.prev` back to `.spare` after its swap: killed before that, the
    spare is named `.prev`, which is one of the two names now."""
    target = tmp_path / "r.json"
    for data in (b"v1", b"v2"):
        _fsops.durable_replace(str(target), data)
    (spare,) = spares(tmp_path)
    os.replace(tmp_path / spare, tmp_path / ".r.json.prev")
    _forget_turns()
    _fsops.durable_replace(str(target), b"v3")
    assert target.read_bytes() == b"v3" and len(spares(tmp_path)) == 1


@pytest.mark.parametrize("fresh_process", [False, True])
def test_a_spare_with_another_name_is_never_written_into(tmp_path: Path, fresh_process: bool) -> None:
    target = tmp_path / "r.json"
    for data in (b"v1", b"v2"):
        _fsops.durable_replace(str(target), data)
    (spare,) = spares(tmp_path)
    os.link(tmp_path / spare, tmp_path / "kept-by-hand")
    if fresh_process:
        _forget_turns()
    _fsops.durable_replace(str(target), b"v3")
    assert (tmp_path / "kept-by-hand").read_bytes() == b"v1"
    assert target.read_bytes() == b"v3"


def test_a_failed_fsync_deletes_the_spare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    for data in (b"v1", b"v2"):
        _fsops.durable_replace(str(target), data)

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_fsops.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        _fsops.durable_replace(str(target), b"v3")
    assert target.read_bytes() == b"v2" and names(tmp_path) == ["r.json"]
    monkeypatch.undo()
    _fsops.durable_replace(str(target), b"v3")  # a fresh spare: fsync never retried on a file
    assert target.read_bytes() == b"v3"


def test_a_read_torn_by_a_concurrent_writer_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "state")
    run = Run(run_id="r1", workflow="w", input={}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", status="waiting")
    store.create(run)
    reads = []
    real = FileStore._read_snapshot

    def torn_once(self: FileStore, run_id: str, path: str) -> tuple[os.stat_result, bytes]:
        st, raw = real(self, run_id, path)
        reads.append(raw)
        return st, (raw[: len(raw) // 2] if len(reads) == 1 else raw)

    monkeypatch.setattr(FileStore, "_read_snapshot", torn_once)
    assert FileStore(tmp_path / "state").load("r1").status == "waiting"
    assert len(reads) == 2

    # what reads the same bytes twice is damaged, and says so
    snapshot = tmp_path / "state" / "runs" / "r1.json"
    snapshot.write_bytes(snapshot.read_bytes()[:-20])
    reads.clear()
    monkeypatch.setattr(FileStore, "_read_snapshot", real)
    with pytest.raises(StateError, match=r"r1\.json"):
        FileStore(tmp_path / "state").load("r1")


def test_the_head_revision_tells_recycled_versions_apart(tmp_path: Path) -> None:
    """Two versions in one inode with equal size and mtime differ by the revision at the head."""
    store = FileStore(tmp_path / "state")
    run = Run(run_id="r1", workflow="w", input={}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", status="waiting")
    store.create(run)
    other = FileStore(tmp_path / "state")
    for _ in range(2):  # another process writes twice: the same inode holds the snapshot again
        theirs = other.load("r1")
        other.save(theirs)
    snapshot = tmp_path / "state" / "runs" / "r1.json"
    st = snapshot.stat()
    known = store._stat["r1"]
    os.utime(snapshot, ns=(st.st_atime_ns, known[0][1]))  # as if within one clock tick
    run.status = "completed"
    with pytest.raises(Exception, match="changed while this command worked on it"):
        store.save(run)


def test_a_deferred_save_is_made_durable_before_its_run_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next write of a run reuses the inode its deferred version left: flush first."""
    store = FileStore(tmp_path / "state")
    runs = [Run(run_id=rid, workflow="w", input={}, created_at="2026-01-01T00:00:00.000Z",
                updated_at="2026-01-01T00:00:00.000Z", status="waiting") for rid in ("a", "b")]
    for run in runs:
        store.create(run)
        store.save(run)  # two versions: the next write recycles an inode
    synced: list[str] = []
    real = _fsops.fsync_dir
    monkeypatch.setattr(_fsops, "fsync_dir", lambda path: (synced.append(path), real(path)))
    with store.batch():
        store.save(runs[0], durability=Durability.BATCH)
        store.save(runs[1], durability=Durability.BATCH)
        assert synced == []
        store.save(runs[0], durability=Durability.BATCH)
        assert synced == [str(tmp_path / "state" / "runs")]
    assert len(synced) == 2  # the batch closed: one more for the last states
    with store.batch():
        pass  # nothing left to do
    assert len(synced) == 2
    assert FileStore(tmp_path / "state").load("a").revision == runs[0].revision == 4


def test_kept_open_files_follow_a_path_that_now_names_another_file(tmp_path: Path) -> None:
    """Appends and directory fsyncs reuse descriptors; a file or directory deleted or replaced
    meanwhile is opened again, so nothing goes to an unlinked inode."""
    log = tmp_path / "h.jsonl"
    _appends.append_line(str(log), b"one\n")
    log.unlink()  # e.g. a run removed by hand, its id used again
    _appends.append_line(str(log), b"two\n")
    assert log.read_bytes() == b"two\n"
    log.rename(tmp_path / "old.jsonl")
    log.write_bytes(b"new\n")
    _appends.append_line(str(log), b"three\n")
    assert log.read_bytes() == b"new\nthree\n"

    directory = tmp_path / "d"
    directory.mkdir()
    _fsops.fsync_dir(str(directory))
    directory.rename(tmp_path / "d-old")
    directory.mkdir()
    _fsops.fsync_dir(str(directory))
    assert _fsops._DIRS[str(directory)][2] == directory.stat().st_ino


def _record_order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What `durable_replace` does, in order: directory fsyncs, opening the spare and writing
    into it."""
    calls: list[str] = []
    real_sync, real_open, real_pwrite = _fsops.fsync_dir, _fsops._open_spare, os.pwrite

    def fsync_dir(path: str) -> None:
        calls.append("dirsync")
        real_sync(path)

    def open_spare(path: str) -> tuple[int, os.stat_result, str, str, bool]:
        calls.append("spare")
        return real_open(path)

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        calls.append("write")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_fsops, "fsync_dir", fsync_dir)
    monkeypatch.setattr(_fsops, "_open_spare", open_spare)
    monkeypatch.setattr(_fsops.os, "pwrite", pwrite)
    return calls


def test_steps_of_one_process_cost_one_directory_fsync_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    for n in range(2):
        _fsops.durable_replace(str(target), f"v{n}".encode())
    calls = _record_order(monkeypatch)
    for n in range(2, 6):
        _fsops.durable_replace(str(target), f"v{n}".encode())
    assert calls == ["spare", "write", "dirsync"] * 4  # the previous rename is known durable


def test_a_writer_killed_before_its_directory_fsync_is_made_durable_before_the_spare_is_reused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC §6, old or new and never torn: another process renamed a version in and was
    killed before fsyncing the directory, so the disk may still name the spare `r.json`;
    writing into it before that rename is durable would leave a torn snapshot after a power
    cut. This process fsyncs the directory first."""
    import subprocess
    import sys

    target = tmp_path / "r.json"
    _fsops.durable_replace(str(target), b"v1")  # this process synced the directory here
    _fsops.durable_replace(str(target), b"v2")
    script = ("import sys; from wfrun.store import _fsops; "
              "_fsops.durable_replace(sys.argv[1], b'v3-from-another-process')")
    # operations of that write: dirsync (its first write of a path it did not install),
    # write, fsync, link, replace, dirsync: killed at the last dirsync
    got = subprocess.run([sys.executable, "-c", script, str(target)],
                         env={**os.environ, "WFRUN_FAULT": "kill@6"}, check=False)
    assert got.returncode == 137 and target.read_bytes() == b"v3-from-another-process"
    calls = _record_order(monkeypatch)
    _fsops.durable_replace(str(target), b"v4")
    assert calls == ["spare", "dirsync", "write", "dirsync"]
    assert target.read_bytes() == b"v4"


def test_a_version_seen_before_a_directory_fsync_needs_no_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold command (or a tick) writing a run that another process wrote: the version it
    loaded was renamed in before the directory fsync it makes before its first write, so that
    one fsync covers it; a version it never saw is made durable first."""
    target = tmp_path / "r.json"
    for n in range(2):
        _fsops.durable_replace(str(target), f"v{n}".encode())
    monkeypatch.setattr(_fsops, "_DURABLE", {})  # as if another process had written them
    _fsops.read_whole(str(target))  # loading the run sees its version
    calls = _record_order(monkeypatch)
    _fsops.durable_replace(str(target), b"v2")
    assert calls == ["spare", "dirsync", "write", "dirsync"]  # no fsync began after it was seen
    monkeypatch.setattr(_fsops, "_DURABLE", {})
    _fsops.observe(str(target))
    _fsops.fsync_dir(str(tmp_path))  # one fsync for what was seen before it
    calls.clear()
    _fsops.durable_replace(str(target), b"v3")
    assert calls == ["spare", "write", "dirsync"]


def test_a_fresh_spare_needs_no_directory_fsync_before_it_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No earlier version was ever in a newly created spare, so no rename has to be made
    durable before writing into it: a run's first two writes by a cold command cost one
    directory fsync each, whoever wrote the run before."""
    target = tmp_path / "r.json"
    _fsops.durable_write(str(target), b"v1")  # (a run's creation: no spare left behind)
    monkeypatch.setattr(_fsops, "_DURABLE", {})  # as if another process had written it
    monkeypatch.setattr(_fsops, "_SEEN", {})
    calls = _record_order(monkeypatch)
    _fsops.durable_replace(str(target), b"v2")
    assert calls == ["spare", "write", "dirsync"]
    assert target.read_bytes() == b"v2"
    spare, prev = _fsops.spare_paths(str(target))
    assert os.path.exists(prev) and not os.path.exists(spare)  # v1's inode: the next spare


def test_threads_writing_in_one_directory_share_the_bookkeeping_safely(tmp_path: Path) -> None:
    """`wfrun serve` executes runs in several threads: their directory fsyncs and what each
    made durable are one process's bookkeeping (it raised KeyError when two threads settled
    the same fsync's versions)."""
    import threading

    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            for n in range(200):
                _fsops.durable_replace(str(tmp_path / f"run{index}.json"), b"x" * (n % 7 + 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all((tmp_path / f"run{i}.json").read_bytes() == b"x" * (199 % 7 + 1) for i in range(8))
