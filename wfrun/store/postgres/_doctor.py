"""The PostgreSQL store's `check` (`wfrun doctor`): the schema the migrations made, every run's
row (its JSON, its due column), history and logs of no run, and the URL signing key, read and
never changed."""

from __future__ import annotations

from wfrun.durations import parse_iso
from wfrun.errors import StateError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.store.postgres._reads import ReadsPart
from wfrun.store.postgres._schema import schema_problems

# The run ids a table of rows per run holds that name no row of wfrun_runs. The ids are read
# one per run (a skip scan of the table's index on run_id: its cost grows with the runs, not
# with their events); each with the schema and the id quoted for the DELETE doctor prints.
_ORPHANS = """WITH RECURSIVE ids(run_id) AS (
    (SELECT run_id FROM {table} ORDER BY run_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.run_id FROM {table} t WHERE t.run_id > ids.run_id ORDER BY t.run_id LIMIT 1)
    FROM ids WHERE ids.run_id IS NOT NULL)
SELECT ids.run_id, quote_literal(ids.run_id), quote_ident(current_schema()) FROM ids
WHERE ids.run_id IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM wfrun_runs r WHERE r.run_id = ids.run_id)"""
_KEPT = {"wfrun_history": "history events", "wfrun_logs": "log records"}


class DoctorPart(ReadsPart):
    """What `wfrun doctor` finds wrong in the database."""

    def check(self) -> tuple[int, list[dict[str, str]]]:
        with self._conn() as conn:
            damaged = schema_problems(conn)
        problems = [{"path": f"{self._label} {relation}", "kind": "schema", "reason": (
            f"{sentence}: wfrun's migrations created it and wfrun needs it; restore it from "
            "a backup (docs/postgresql.md#backups)")} for relation, sentence in damaged]
        unreadable = {relation for relation, sentence in damaged
                      if sentence.startswith(("table", "column"))}
        if unreadable & {"wfrun_runs", "wfrun_keys"}:
            return 0, problems  # what follows reads them as wfrun wrote them
        runs = 0
        for run_id, revision, run_schema, text, due in self._rows(
                "revision, run_schema, snapshot::text, next_due"):
            runs += 1
            try:
                run = self._parse(run_id, revision, run_schema, text)
            except StateError as exc:
                problems.append({"path": self._describe(run_id), "kind": "snapshot",
                                 "reason": exc.message})
                continue
            wanted = run.next_due()
            if (parse_iso(wanted) if wanted else None) != due:
                what = self._describe(run_id)
                problems.append({"path": what, "kind": "index", "reason": (
                    f"{what} is due at {wanted or 'no time'} but its next_due column says "
                    f"{due.isoformat() if due else 'never'}; its next save corrects it")})
        problems.extend(self._orphans(unreadable))
        with self._conn() as conn:
            row = conn.execute("SELECT length(secret) FROM wfrun_keys WHERE name = 'url'").fetchone()
        if row is not None and row[0] < 32:
            problems.append({"path": f"{self._label} table wfrun_keys", "kind": "key",
                             "reason": "the URL signing key is shorter than 32 bytes"})
        return runs, problems

    def _orphans(self, unreadable: set[str]) -> list[dict[str, str]]:
        """Notes for the history and log rows of runs that have no row in wfrun_runs (deleted by
        hand): no command reads them; doctor prints the DELETE that removes them."""
        kept: dict[str, list[tuple[str, str, str]]] = {}
        for table in _KEPT:
            if table not in unreadable:
                for run_id, literal, schema in self._fetch(None, _ORPHANS.format(table=table), []):
                    kept.setdefault(run_id, []).append((table, literal, schema))
        found = []
        for run_id, tables in sorted(kept.items()):
            what = (self._describe(run_id) if RUN_ID_PATTERN.fullmatch(run_id)
                    else f"{self._label} run {run_id!r}")
            rows = " and ".join(f"{_KEPT[table]} in {table}" for table, _, _ in tables)
            delete = " ".join(f"DELETE FROM {schema}.{table} WHERE run_id = {literal};"
                              for table, literal, schema in tables)
            found.append({"path": what, "kind": "orphan", "severity": "note", "reason": (
                f"{what} has no row in wfrun_runs (deleted by hand?), but its {rows} are still "
                f"kept: no command reads them, and no run can be started again as {run_id} "
                f"until they are removed; remove them with {delete}")})
        return found
