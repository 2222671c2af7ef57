"""`wfrun state copy SRC DST` (SPEC §10): every run of one store (its state with its inbox, its
history and logs), the start tokens, the schedule states and the URL signing key, put into
another store and then read back from it and compared with the source. Only the Store
interface is used, so any two stores work, in either direction.

Idempotent: what the destination holds already, identical, is counted and left alone; what it
holds that differs is reported as a conflict and left alone too. Nothing is written to the
source.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from wfrun.errors import ConflictError, NotFoundError, UsageError, WfrunError
from wfrun.store._open import open_store
from wfrun.store._urls import public_url, store_kind
from wfrun.store.abc import Store

KINDS = ("runs", "history_events", "log_records", "tokens", "schedules", "key")
TOKEN_KEYS = ("name", "workflow", "hash", "created_at", "revoked", "revoked_at")
BUSY_NAMED = 5  # runs named in the message refusing to copy runs being executed


class CopyReport:
    """What a copy did: counts of what was copied, found there already and verified (by
    `KINDS`), and one problem per thing that went wrong, each `{"kind", "message"}` (and
    `"run_id"` for a run) where kind is `unreadable` (in SRC), `conflict` (DST holds something
    else under that name), `failed` (could not be written) or `mismatch` (read back from DST,
    it differs from SRC)."""

    def __init__(self, source: str, destination: str) -> None:
        self.source, self.destination = source, destination
        self.copied = dict.fromkeys(KINDS, 0)
        self.already = dict.fromkeys(KINDS, 0)
        self.verified = dict.fromkeys(KINDS, 0)
        self.problems: list[dict[str, str]] = []

    def problem(self, kind: str, message: str, run_id: str | None = None) -> None:
        """Record one problem (a sentence saying what and where)."""
        self.problems.append({"kind": kind, "message": message,
                              **({"run_id": run_id} if run_id else {})})

    @property
    def exit_code(self) -> int:
        """0 when everything verified; 3 when the only problems are conflicts; else 5 (SPEC §5:
        something could not be read, written or verified)."""
        if not self.problems:
            return 0
        return 3 if all(p["kind"] == "conflict" for p in self.problems) else 5

    def to_dict(self) -> dict[str, Any]:
        """The report as `--json` prints it."""
        return {"source": self.source, "destination": self.destination, "copied": self.copied,
                "already_there": self.already, "verified": self.verified,
                "problems": self.problems, "ok": not self.problems}


def copy_state(src_url: str, dst_url: str) -> CopyReport:
    """Copy everything SRC holds into DST, then verify DST against SRC (see the module).

    Refuses, writing nothing: the same store twice (UsageError), a SRC that does not exist
    (NotFoundError; never created), runs that a process is executing in SRC and a DST with
    another URL signing key (ConflictError). Everything else that goes wrong is a problem of
    the report, and the copy goes on with the rest."""
    src, dst = open_store(src_url), open_store(dst_url)  # (UsageError for a malformed URL)
    report = CopyReport(public_url(src_url), public_url(dst_url))
    if same_store(src_url, dst_url):
        raise UsageError(f"{report.source} and {report.destination} are the same store; give "
                         "the store to copy from and another one to copy into")
    if not src.has_state():
        kind, where = store_kind(src_url)
        what = (f"state directory {os.path.abspath(where)} does not exist" if kind == "file"
                else f"{report.source} holds no wfrun tables")
        raise NotFoundError(f"{what}: there is nothing to copy (check SRC)")
    _refuse_busy(src, report.source)
    key = src.stored_secret_key()
    if key is not None:
        try:
            adopted = dst.adopt_secret_key(key)
        except ConflictError as exc:
            raise ConflictError(f"{exc.message}; nothing was copied") from None
        (report.copied if adopted else report.already)["key"] += 1
    expected = Expected(_copy_tokens(src, dst, report), _copy_schedules(src, dst, report),
                        _copy_runs(src, dst, report), key)
    verify(src_url, dst_url, expected, report)
    return report


class Expected:
    """What DST must now hold as SRC does: the names of the tokens, the workflows of the
    schedule states and the ids of the runs that were copied or found there, and the key."""

    def __init__(self, tokens: list[str], schedules: list[str], runs: list[str],
                 key: bytes | None) -> None:
        self.tokens, self.schedules, self.runs, self.key = tokens, schedules, runs, key


def same_store(a: str, b: str) -> bool:
    """True if two store URLs name the same place (a directory, or a database's schema)."""
    kind_a, where_a = store_kind(a)
    kind_b, where_b = store_kind(b)
    if kind_a != kind_b:
        return False
    if kind_a == "file":
        return os.path.realpath(where_a) == os.path.realpath(where_b)
    return _database(where_a) == _database(where_b)


def _database(url: str) -> tuple[str, ...]:
    from psycopg.conninfo import conninfo_to_dict  # only for a PostgreSQL URL

    info = conninfo_to_dict(url)
    return (str(info.get("host") or info.get("hostaddr") or "localhost"),
            str(info.get("port") or "5432"), str(info.get("dbname") or info.get("user") or ""),
            " ".join(str(info.get("options") or "").split()))


def _refuse_busy(src: Store, source: str) -> None:
    """ConflictError naming the runs that a process of SRC is executing right now."""
    busy = [run_id for run_id in src.run_ids() if src.is_claimed(run_id)]
    if busy:
        named = ", ".join(busy[:BUSY_NAMED]) + (
            f" and {len(busy) - BUSY_NAMED} more" if len(busy) > BUSY_NAMED else "")
        raise ConflictError(
            f"{len(busy)} run(s) of {source} are being executed right now ({named}): stop the "
            "workers and any 'wfrun tick --watch' or 'wfrun serve' using it, then copy again; "
            "nothing was copied")


def _token(record: dict[str, Any]) -> dict[str, Any]:
    view = {key: record.get(key) for key in TOKEN_KEYS}
    view["revoked"] = bool(view["revoked"])
    return view


def _copy_tokens(src: Store, dst: Store, report: CopyReport) -> list[str]:
    """Save each start token of SRC that DST lacks; the names DST now holds as SRC does."""
    there = {record["name"]: _token(record) for record in dst.tokens()}
    done = []
    for record in src.tokens():  # oldest first: they keep their order
        name = record["name"]
        if name not in there:
            try:
                dst.save_token(_token(record))
            except WfrunError as exc:
                report.problem("conflict" if isinstance(exc, ConflictError) else "failed",
                               f"start token {name!r} was not copied: {exc.message}")
                continue
            report.copied["tokens"] += 1
        elif there[name] == _token(record):
            report.already["tokens"] += 1
        else:
            report.problem("conflict", f"start token {name!r} exists already in "
                           f"{report.destination} with another hash, workflow or revocation; "
                           "it was left as it is")
            continue
        done.append(name)
    return done


def _copy_schedules(src: Store, dst: Store, report: CopyReport) -> list[str]:
    """Save each schedule state of SRC that DST lacks; the workflows whose state DST now
    holds as SRC does."""
    try:
        workflows = src.schedule_workflows()
    except WfrunError as exc:
        report.problem("unreadable", f"{exc.message} (no schedule state was copied)")
        return []
    done = []
    for workflow in workflows:
        try:
            state, _ = src.schedule_state(workflow)
            if state is None:
                continue  # (gone meanwhile)
            there, _ = dst.schedule_state(workflow)
            if there is None:
                dst.save_schedule_state(workflow, state, 0)
                report.copied["schedules"] += 1
            elif there == state:
                report.already["schedules"] += 1
            else:
                report.problem("conflict", f"the schedule state of workflow '{workflow}' "
                               f"differs in {report.destination}; it was left as it is")
                continue
        except WfrunError as exc:
            report.problem("conflict" if isinstance(exc, ConflictError) else "failed",
                           f"the schedule state of workflow '{workflow}' was not copied: "
                           f"{exc.message}")
            continue
        done.append(workflow)
    return done


def _copy_runs(src: Store, dst: Store, report: CopyReport) -> list[str]:
    """Import each run of SRC into DST; the ids of those DST now holds as SRC does."""
    done: list[str] = []
    for item in src.iter_runs():
        if isinstance(item, Exception):
            message = item.message if isinstance(item, WfrunError) else str(item)
            report.problem("unreadable", f"{message} (not copied)")
            continue
        try:
            history = src.read_history(item.run_id)
            logs = src.read_logs(item.run_id)[0]
        except WfrunError as exc:
            report.problem("unreadable", f"run {item.run_id} was not copied: {exc.message}",
                           item.run_id)
            continue
        try:
            stored = dst.import_run(item, history, logs)
        except ConflictError as exc:
            report.problem("conflict", exc.message, item.run_id)
            continue
        except WfrunError as exc:
            report.problem("failed", f"run {item.run_id} was not copied: {exc.message}",
                           item.run_id)
            continue
        tally = report.copied if stored else report.already
        tally["runs"] += 1
        tally["history_events"] += len(history)
        tally["log_records"] += len(logs)
        done.append(item.run_id)
    return done


def verify(src_url: str, dst_url: str, expected: Expected, report: CopyReport) -> None:
    """Read back from DST what it must hold as SRC does (through stores opened afresh: nothing
    this process remembers of its writes is trusted) and compare it with SRC: each run field
    by field, its history and logs record by record, the start tokens, the schedule states and
    the key. Each match is counted in `report.verified`, each difference is a `mismatch`."""
    src, dst = open_store(src_url), open_store(dst_url)
    where = report.destination
    for run_id in expected.runs:
        try:
            found = _run_difference(src, dst, run_id, report.verified)
        except WfrunError as exc:
            found = f"it cannot be read back: {exc.message}"
        if found is not None:
            report.problem("mismatch", f"run {run_id} in {where} does not match the source: "
                           f"{found}", run_id)
    checks: list[tuple[str, Callable[[], bool], str]] = []
    if expected.key is not None:
        key = expected.key
        checks.append(("key", lambda: dst.stored_secret_key() == key,
                       f"the URL signing key in {where} is not the source's"))
    if expected.tokens:
        mine = {r["name"]: _token(r) for r in src.tokens()}
        theirs = {r["name"]: _token(r) for r in dst.tokens()}
        checks.extend(("tokens", functools.partial(_equal, mine.get(name), theirs.get(name)),
                       f"start token {name!r} in {where} is not the source's")
                      for name in expected.tokens)
    checks.extend(("schedules", functools.partial(_same_schedule, src, dst, workflow),
                   f"the schedule state of workflow '{workflow}' in {where} is not the source's")
                  for workflow in expected.schedules)
    for kind, same, message in checks:
        try:
            matched = same()
        except WfrunError as exc:
            matched, message = False, f"{message} ({exc.message})"
        if matched:
            report.verified[kind] += 1
        else:
            report.problem("mismatch", message)


def _equal(a: Any, b: Any) -> bool:
    return a is not None and a == b


def _same_schedule(src: Store, dst: Store, workflow: str) -> bool:
    return _equal(src.schedule_state(workflow)[0], dst.schedule_state(workflow)[0])


def _run_difference(src: Store, dst: Store, run_id: str, verified: dict[str, int]) -> str | None:
    """What differs between the run as SRC and DST keep it (None: nothing, and what matched is
    counted in `verified`)."""
    ours, theirs = src.load(run_id), dst.load(run_id)
    if ours != theirs:
        return _first_difference(ours.to_dict(), theirs.to_dict())
    records: dict[str, int] = {}
    readers: list[tuple[str, Callable[[Store], list[dict[str, Any]]]]] = [
        ("history event", lambda store: store.read_history(run_id)),
        ("log record", lambda store: store.read_logs(run_id)[0])]
    for what, read in readers:
        mine, copy = read(src), read(dst)
        if mine != copy:
            at = next((i for i, (a, b) in enumerate(zip(mine, copy, strict=False)) if a != b),
                      min(len(mine), len(copy)))
            return (f"its {what}s differ from number {at + 1} on ({len(mine)} in the source, "
                    f"{len(copy)} in the copy)")
        records[what] = len(mine)
    verified["runs"] += 1
    verified["history_events"] += records["history event"]
    verified["log_records"] += records["log record"]
    return None


def _first_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """The fields of a run's document that differ, in words, with the values of the telling
    one (its status, else its revision, else the first; for steps, the first step)."""
    fields = [f for f in [*ours, *(k for k in theirs if k not in ours)]
              if ours.get(f) != theirs.get(f)]
    named = ", ".join(f"'{f}'" for f in fields)
    shown = next((f for f in ("status", "revision", *fields) if f in fields), "steps")
    a, b = ours.get(shown), theirs.get(shown)
    if shown == "steps" and isinstance(a, dict) and isinstance(b, dict):
        step = next(s for s in [*a, *b] if a.get(s) != b.get(s))
        detail = f"step '{step}' is not the same"
    else:
        detail = f"{shown} is {_short(a)} in the source and {_short(b)} in the copy"
    return f"{'its field' if len(fields) == 1 else 'its fields'} {named} differ ({detail})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
