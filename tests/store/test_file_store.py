"""What only the file store promises beyond the Store contract (test_*_contract.py): files that
a crash tears, file modes, the checksum line, nothing left behind by a delete, and schedule
states kept in private checksummed files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wfrun.errors import StateError, UsageError
from wfrun.model import Run
from wfrun.store.file import FileStore

from ._runs import make_run


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "state")


def test_a_torn_last_history_line_is_ignored_and_the_next_append_starts_its_own(
    store: FileStore,
) -> None:
    store.create(make_run("r1"))
    store.append_history("r1", [{"type": "a"}, {"type": "b"}, {"type": "c"}])
    with open(os.path.join(store.root, "runs", "r1.history.jsonl"), "ab") as fh:
        fh.write(b'{"type": "tor')
    assert [e["type"] for e in store.read_history("r1")] == ["a", "b", "c"]
    # the next append starts a line of its own: the torn one does not swallow it
    store.append_history("r1", [{"type": "d"}])
    assert [e["type"] for e in store.read_history("r1")] == ["a", "b", "c", "d"]


def test_the_url_key_file_is_private_and_not_in_snapshots(store: FileStore) -> None:
    key = store.secret_key()
    store.create(make_run("r1"))
    assert key.hex() not in Path(store.snapshot_path("r1")).read_text()
    assert os.stat(os.path.join(store.root, "keys", "url.key")).st_mode & 0o777 == 0o600


def test_a_snapshot_changed_by_one_byte_fails_its_checksum(store: FileStore) -> None:
    store.create(make_run("good", "2026-01-02T00:00:00.000Z"))
    store.create(make_run("bad", "2026-01-02T00:00:00.000Z"))
    path = Path(store.snapshot_path("bad"))
    raw = bytearray(path.read_bytes())
    index = raw.index(b'"wf"') + 2
    raw[index] = ord("x")  # still valid JSON: only the checksum can tell
    path.write_bytes(bytes(raw))
    with pytest.raises(StateError, match="checksum"):
        FileStore(store.root).load("bad")
    assert path.read_bytes() == bytes(raw)
    items = list(FileStore(store.root).iter_runs())
    assert [r.run_id for r in items if isinstance(r, Run)] == ["good"]
    assert any(isinstance(r, StateError) and "bad.json" in str(r) for r in items)


def test_logs_leave_a_torn_last_record_for_later(store: FileStore) -> None:
    store.create(make_run("r1"))
    store.append_log("r1", [{"text": "a"}])
    path = os.path.join(store.root, "runs", "r1.log.jsonl")
    with open(path, "ab") as fh:
        fh.write(b'{"text": "b')  # a writer is mid-append (or died there)
    records, cursor = store.read_logs("r1")
    assert [r["text"] for r in records] == ["a"]
    with open(path, "ab") as fh:
        fh.write(b'"}\nnot json\n')
    newer, _ = store.read_logs("r1", cursor)
    assert [r["text"] for r in newer] == ["b"]  # completed later; the bad line is skipped


def test_delete_leaves_no_file_of_the_run(store: FileStore) -> None:
    for run_id in ("done", "other"):
        run = make_run(run_id)
        store.create(run)
        run.status, run.running_since = "completed", None
        store.save(run)
        store.append_history(run_id, [{"type": "completed"}])
        store.append_log(run_id, [{"text": "hi"}])
    store.delete("done")
    assert not [p for p in Path(store.root).rglob("*") if "done" in p.name]
    assert [p.name for p in Path(store.root).rglob("*") if "other" in p.name]


# -- schedule states: a private, checksummed file per workflow --------------------------------

def test_the_file_store_refuses_a_bad_name_before_touching_storage(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        FileStore(tmp_path / "state").save_schedule_state("../x", {}, 0)
    assert FileStore(tmp_path / "state").schedule_state("w") == (None, 0)
    assert not (tmp_path / "state").exists()



def test_the_file_store_keeps_a_private_checksummed_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.save_schedule_state("w", {"n": 1}, 0)
    path = tmp_path / "state" / "schedules" / "w.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []
    path.write_text(path.read_text().replace('"n": 1', '"n": 2'))  # a hand edit
    with pytest.raises(StateError, match=r"schedules/w\.json is damaged"):
        FileStore(tmp_path / "state").schedule_state("w")
    with pytest.raises(StateError):  # and a save does not write over it
        FileStore(tmp_path / "state").save_schedule_state("w", {"n": 3}, 1)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"revision": 1}'])
def test_an_unreadable_state_file_is_a_state_error(tmp_path: Path, content: bytes) -> None:
    store = FileStore(tmp_path / "state")
    store.save_schedule_state("w", {"n": 1}, 0)
    (tmp_path / "state" / "schedules" / "w.json").write_bytes(content)
    with pytest.raises(StateError, match="move it away"):
        FileStore(tmp_path / "state").schedule_state("w")


def test_a_failed_write_leaves_the_previous_state(tmp_path: Path) -> None:
    """Each durable write goes through _fsops (WFRUN_FAULT injects failures there)."""
    import subprocess
    import sys

    root = tmp_path / "state"
    FileStore(root).save_schedule_state("w", {"n": 1}, 0)
    code = ("import sys; from wfrun.store.file import FileStore; "
            "FileStore(sys.argv[1]).save_schedule_state('w', {'n': 2}, 1)")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "WFRUN_FAULT": "enospc@2"})
    assert proc.returncode != 0 and "cannot write schedule state" in proc.stderr
    assert FileStore(root).schedule_state("w") == ({"n": 1}, 1)
