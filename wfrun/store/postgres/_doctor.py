"""The PostgreSQL store's `check` (`wfrun doctor`): the schema the migrations made, every run's
row (its JSON, its due column) and the URL signing key, read and never changed."""

from __future__ import annotations

from wfrun.durations import parse_iso
from wfrun.errors import StateError
from wfrun.store.postgres._reads import ReadsPart
from wfrun.store.postgres._schema import schema_problems


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
        with self._conn() as conn:
            row = conn.execute("SELECT length(secret) FROM wfrun_keys WHERE name = 'url'").fetchone()
        if row is not None and row[0] < 32:
            problems.append({"path": f"{self._label} table wfrun_keys", "kind": "key",
                             "reason": "the URL signing key is shorter than 32 bytes"})
        return runs, problems
