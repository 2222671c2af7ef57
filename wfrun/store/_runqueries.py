"""The file store's queries over its run index (`_runindex`): `find_runs` and `pending`, each
reading the snapshots of only the runs it answers with, and the caches that spare them even
that (never state): `status/counts.json`, how many entries each day directory held at a given
mtime (so that "N more" does not list every name), and `status/summaries/STATUS~DAY.json`, the
summaries of the runs a list showed, each with the inode, mtime and size of the snapshot and
claim file it was read from (used while they match)."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

import wfrun.store._dirs as _dirs
from wfrun.errors import NotFoundError, StateError, UsageError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.model import RUN_STATUSES, RUNNING, SUSPENDED, Run
from wfrun.store._runindex import (
    CHILD,
    COUNTS,
    INDEX,
    SUMMARIES,
    TOP,
    Counts,
    Entry,
    RunIndex,
    counted,
    day_of,
    entry_of,
    escape_part,
    listdir_visible,
    parse_entry,
    tally,
    workflow_token,
)
from wfrun.store.queries import RunPage, RunSummary, has_suspension, newest_first, split_cursor

_FIX_AT_MOST = 64  # stale entries one query corrects (the next ones correct the rest)
_SETTLED_SECONDS = 2.0  # a day directory unchanged this long has its counts cached (mtimes are
#                         as coarse as the kernel's clock tick: a newer one could hide a change)
_EMPTY_GRACE_SECONDS = 60.0  # an empty day directory is removed once unchanged this long
_SUMMARY_KEYS = ("run_id", "workflow", "status", "created_at", "updated_at", "next_due", "parent")


class RunQueries(RunIndex):
    """The query part of the file store (a mixin of FileStore), answered from the run index."""
    def find_runs(self, statuses: Iterable[str] | None = None, workflow: str | None = None,
                  top_level: bool = True, limit: int | None = None,
                  before: str | None = None) -> RunPage:
        after = split_cursor(before) if before is not None else None
        if not self._run_index_ready():
            return RunPage([])
        wanted = RUN_STATUSES if statuses is None else tuple(
            s for s in RUN_STATUSES if s in set(statuses))
        token = None if workflow is None else workflow_token(workflow)
        kinds = (TOP,) if top_level else (TOP, CHILD)
        last = (escape_part(after[0], 40), after[1]) if after else None
        last_day = day_of(after[0]) if after else None
        # a listing of every run keeps no cache (prune's, or `list --json`: what it read is as
        # large as the snapshots' own data, and `prune --dry-run` must change nothing)
        query = _Query(self, keep=limit is not None or statuses is not None
                       or workflow is not None or before is not None)
        rows: list[RunSummary] = []
        more = 0
        full = limit is not None and limit <= 0
        days = query.days(wanted)
        for day in sorted(days, reverse=True):
            if last_day is not None and day > last_day:
                query.skipped += 1
                continue
            if full and day != last_day:
                more += sum(counted(query.counts(status, day), token, kinds)
                            for status in days[day])
                continue
            entries: list[tuple[tuple[str, str], str, str]] = []
            for status in days[day]:
                for name in query.names(status, day):
                    parts = parse_entry(name)
                    if parts is None or parts[3] not in kinds \
                            or (token is not None and parts[2] != token):
                        query.skipped += 1
                        continue
                    key = (parts[0], parts[1])
                    if last is None or key < last:
                        entries.append((key, status, name))
                    else:
                        query.skipped += 1
            entries.sort(reverse=True)
            for _, status, name in entries:
                if full:
                    more += 1
                    continue
                summary = query.summary((status, day, name))
                if summary is not None and summary.status in wanted \
                        and (workflow is None or summary.workflow == workflow):
                    rows.append(summary)
                    full = limit is not None and len(rows) >= limit
        query.fix()
        if not full and query.alone(wanted):
            # The query read every run the index knows: listing runs/ costs no more, and finds
            # what the index lacks (a run it lost, or a file put there by hand, reported).
            for run in query.unindexed():
                if run.status in wanted and (workflow is None or run.workflow == workflow) \
                        and not (top_level and run.parent is not None) \
                        and (after is None or newest_first(run) < after):
                    rows.append(RunSummary.of(run))
            rows.sort(key=newest_first, reverse=True)
            if limit is not None and len(rows) > limit:
                more += len(rows) - max(limit, 0)
                del rows[max(limit, 0):]
        query.save()
        return RunPage(rows, more, query.problems)

    def pending(self, workflow: str | None = None) -> tuple[list[Run], list[Exception]]:
        if not self._run_index_ready():
            return [], []
        token = None if workflow is None else workflow_token(workflow)
        query = _Query(self, keep=False)
        runs: list[Run] = []
        # a suspended step makes its run suspended, unless the run is executing another step
        days = query.days((SUSPENDED, RUNNING))
        for day in sorted(days, reverse=True):
            for status in days[day]:
                for name in query.names(status, day):
                    parts = parse_entry(name)
                    if parts is None or (token is not None and parts[2] != token):
                        query.skipped += 1
                        continue
                    run = query.check((status, day, name))
                    if run is not None and has_suspension(run) \
                            and (workflow is None or run.workflow == workflow):
                        runs.append(run)
        query.fix()
        if query.alone((SUSPENDED, RUNNING)):  # every run read anyway: see find_runs
            runs.extend(run for run in query.unindexed() if has_suspension(run)
                        and (workflow is None or run.workflow == workflow))
        query.save()
        return runs, query.problems


class _Query:
    """One query's walk over the index: what it read, what it found wrong, cached counts."""

    def __init__(self, store: RunQueries, keep: bool = True) -> None:
        self.store = store
        self.keep = keep  # write what it read into the summaries cache
        self.read = 0  # snapshots read
        self.skipped = 0  # entries of the directories walked that the query left out
        self.seen: set[str] = set()  # runs answered with or reported
        self.problems: list[Exception] = []
        self.stale: dict[str, list[Entry]] = {}
        self._cache: dict[str, list[Any]] | None = None  # counts.json: day directory -> ...
        self._changed = False
        self._days: dict[str, list[str]] = {}  # status -> its day directories
        # status~day -> {run: [snapshot signature, claim file's, summary, snapshot status]}
        self._summaries: dict[str, dict[str, list[Any]]] = {}
        self._dirty: set[str] = set()  # (those to write back)
        self._listed_names: dict[str, list[str]] = {}  # status~day -> names listed

    def days(self, statuses: Iterable[str]) -> dict[str, list[str]]:
        """The day directories of these statuses: day -> the statuses that have it."""
        days: dict[str, list[str]] = {}
        for status in statuses:
            listed = self._days[status] = listdir_visible(self.store._path(INDEX, status))
            for day in listed:
                days.setdefault(day, []).append(status)
        return days

    def names(self, status: str, day: str) -> list[str]:
        """The names in a day directory."""
        names = self._listed_names[f"{status}~{day}"] = listdir_visible(
            self.store._path(INDEX, status, day))
        return names

    def summary(self, entry: Entry) -> RunSummary | None:
        """`check` for a summary: the one cached for the entry's run while its snapshot and
        claim file keep the signatures it was verified with (no snapshot parsed), else the
        loaded run's, cached for next time."""
        status, day, name = entry
        run_id = name.split("~", 2)[1]
        if run_id in self.seen:
            self.check(entry)  # a second entry (a crash between two): marked stale
            return None
        shard = f"{status}~{day}"
        cached = self._shard(shard).get(run_id)
        if cached is not None:
            summary = self._still(run_id, cached)
            if summary is not None:
                self.read += 1
                if cached[3] != status or entry_of(summary) != (day, name):
                    self.stale.setdefault(run_id, []).append(entry)
                    return None
                self.seen.add(run_id)
                return summary
        run = self.check(entry)
        known = self.store._stat.get(run_id)
        if run is None or known is None:
            if self._summaries[shard].pop(run_id, None) is not None:
                self._dirty.add(shard)
            return None
        summary = RunSummary.of(run)
        settled = time.time() - _SETTLED_SECONDS
        if known[0][1] < settled * 1e9 and (known[2] is None or known[2][1] < settled * 1e9):
            # (a file changed since would have a later mtime: its inode, mtime and size tell)
            self._summaries[shard][run_id] = [
                list(known[0][:3]), list(known[2]) if known[2] else None,
                [getattr(summary, key) for key in _SUMMARY_KEYS], status]
            self._dirty.add(shard)
        elif self._summaries[shard].pop(run_id, None) is not None:
            self._dirty.add(shard)
        return summary

    def _shard(self, shard: str) -> dict[str, list[Any]]:
        """The cached summaries of a day directory (none if unreadable: it is a cache)."""
        found = self._summaries.get(shard)
        if found is None:
            try:
                with open(self.store._path(INDEX, SUMMARIES, shard + ".json"), "rb") as fh:
                    found = json.load(fh)
            except (OSError, ValueError):
                found = None
            found = self._summaries[shard] = found if isinstance(found, dict) else {}
        return found

    def _still(self, run_id: str, cached: Any) -> RunSummary | None:
        """The cached summary if the run's snapshot and claim file still have the inode, mtime
        and size cached with it (a summary is cached only once its files are older than the
        mtime's granularity: a later write makes a later mtime)."""
        try:
            snapshot, record, fields, _ = cached
            st = os.stat(self.store._path("runs", run_id + ".json"))
            if snapshot != [st.st_ino, st.st_mtime_ns, st.st_size]:
                return None
            try:
                ex = os.stat(self.store._path("locks", run_id + ".exec"))
                now = [ex.st_ino, ex.st_mtime_ns, ex.st_size] if ex.st_size else None
            except FileNotFoundError:
                now = None
            if record != now or len(fields) != len(_SUMMARY_KEYS) \
                    or not all(isinstance(f, str) for f in fields[:5]) \
                    or not all(f is None or isinstance(f, str) for f in fields[5:]):
                return None
            return RunSummary(*fields)
        except (OSError, TypeError, ValueError):  # gone, or a cache of another shape
            return None

    def check(self, entry: Entry) -> Run | None:
        """The entry's run if the entry agrees with its snapshot; None if the run was answered
        already, cannot be read (a problem) or the entry is stale (corrected by `fix`)."""
        run_id = entry[2].split("~", 2)[1]
        if run_id in self.seen:  # a second entry (a crash between two): its run is done
            self.stale.setdefault(run_id, []).append(entry)
            return None
        try:
            run = self.store.load(run_id)
        except NotFoundError:
            self.stale.setdefault(run_id, []).append(entry)
            return None
        except (StateError, UsageError) as exc:
            self.seen.add(run_id)
            self.problems.append(exc)
            return None
        self.read += 1
        if self.store._listed.get(run_id) != entry[0] or entry_of(run) != entry[1:]:
            self.stale.setdefault(run_id, []).append(entry)
            return None
        self.seen.add(run_id)
        return run

    def fix(self) -> None:
        """Correct (a bounded number of) the stale entries met."""
        for run_id, entries in itertools.islice(self.stale.items(), _FIX_AT_MOST):
            self.store._fix_entries(run_id, entries)

    def unindexed(self) -> list[Run]:
        """The runs in runs/ this query did not answer with, given their entries; a snapshot
        that cannot be read, and a file there that is no run's, go to `problems`."""
        found = []
        for stem in self.store._snapshot_stems():
            if stem in self.seen:
                continue
            if not RUN_ID_PATTERN.fullmatch(stem):
                self.problems.append(StateError(self.store.stray_snapshot(stem)))
                continue
            try:
                run = self.store.load(stem)
            except NotFoundError:
                continue
            except (StateError, UsageError) as exc:
                self.problems.append(exc)
                continue
            self.seen.add(stem)
            self.store._fix_entries(stem, self.stale.get(stem, []))
            found.append(run)
        return found

    # -- entry counts, cached by day directory ----------------------------------------------------

    def counts(self, status: str, day: str) -> Counts:
        """The entries of a day directory per kind and workflow: from counts.json while the
        directory's mtime is the one cached, else by listing it (then cached if settled)."""
        if self._cache is None:
            self._cache = self._load_cache()
        path = self.store._path(INDEX, status, day)
        key = f"{status}/{day}"
        try:
            st = os.stat(path)
        except OSError:
            if self._cache.pop(key, None) is not None:
                self._changed = True
            return {}
        cached = self._cache.get(key)
        if isinstance(cached, list) and len(cached) == 3 and cached[0] == st.st_ino \
                and cached[1] == st.st_mtime_ns and isinstance(cached[2], dict) \
                and all(isinstance(per, dict) for per in cached[2].values()):
            counts: Counts = cached[2]
            return counts
        names = listdir_visible(path)
        counts = tally(names)
        age = time.time() - st.st_mtime_ns / 1e9
        if not names and age > _EMPTY_GRACE_SECONDS:
            with suppress(OSError):
                os.rmdir(path)  # (fails if an entry came in since: see _touch_entry)
        if age > _SETTLED_SECONDS:
            self._cache[key] = [st.st_ino, st.st_mtime_ns, counts]
            self._changed = True
        elif self._cache.pop(key, None) is not None:
            self._changed = True
        return counts

    def alone(self, walked: Iterable[str]) -> bool:
        """True if the index holds no entry but those of the `walked` statuses' directories
        and the query left none of those out: it has read every run the index knows."""
        if self.skipped:
            return False
        for status in RUN_STATUSES:
            if status in walked:
                continue
            for day in listdir_visible(self.store._path(INDEX, status)):
                try:
                    with os.scandir(self.store._path(INDEX, status, day)) as names:
                        if any(not name.name.startswith(".") for name in names):
                            return False
                except (FileNotFoundError, NotADirectoryError):
                    continue
        return True

    def _load_cache(self) -> dict[str, list[Any]]:
        try:
            with open(self.store._path(INDEX, COUNTS), "rb") as fh:
                cache = json.load(fh)
        except (OSError, ValueError):
            return {}
        return cache if isinstance(cache, dict) else {}

    def save(self) -> None:
        """Write back the caches that changed: counts.json and the summaries of each day
        directory read (those of runs no longer there left out)."""
        if self._changed and self._cache is not None:
            _write_cache(self.store._path(INDEX, COUNTS), self._cache)
        for shard in self._dirty if self.keep else ():
            names = self._listed_names.get(shard, ())
            there = {name.split("~", 2)[1] for name in names if name.count("~") == 3}
            kept = {k: v for k, v in self._summaries[shard].items() if k in there}
            directory = self.store._path(INDEX, SUMMARIES)
            with suppress(OSError):
                _dirs.make_dir(directory)
                _write_cache(f"{directory}/{shard}.json", kept)


def _write_cache(path: str, value: Any) -> None:
    """Replace a cache file (atomic, not durable: a cache), 0600; I/O errors are ignored."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(value, separators=(",", ":")).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
