"""A PostgreSQL store that cannot be used: a server that is down (nothing listens on the
port), a database that does not exist, a URL whose parameters libpq refuses. Every command
(`list`, `start`, `tick`, `serve`, with the URL in `--store` or in `WFRUN_STORE`) exits 5 with
one sentence naming the host and the database, and no traceback; a URL that cannot even be
parsed is a usage error (exit 2), one sentence too.

Each command is its own process: the first of each case a cold `python -m wfrun`, the others
forked from a pre-imported launcher (the same command line code, without the start-up cost).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest

from ._pgfleet import clean_env
from ._pgload import PgWarm
from ._pgproject import write_project

COMMANDS = (["list"], ["start", "poll"], ["tick"], ["tick", "--watch", "--interval", "0.2"],
            ["serve", "--port", "0"])


def _url(kind: str) -> tuple[str, str, str]:
    """A store URL of that kind, and the host:port and database its error must name."""
    parts = urlsplit(_pg.server_url())
    host, user = parts.hostname or "localhost", parts.username or "postgres"
    database = parts.path.lstrip("/") or user
    if kind == "server down":  # nothing listens on port 1
        return urlunsplit(parts._replace(netloc=f"{user}@{host}:1")), f"{host}:1", database
    port = parts.port or 5432
    assert kind == "no such database"  # (a port that is no number is a usage error, exit 2:
    _pg.require()  # tests/store/test_postgres_url_messages.py); the server must answer
    missing = f"wfrun_missing_{secrets.token_hex(4)}"
    return urlunsplit(parts._replace(path=f"/{missing}")), f"{host}:{port}", missing


@pytest.fixture(scope="module")
def launcher() -> Iterator[PgWarm]:
    warm = PgWarm()
    yield warm
    warm.close()


def _wfrun(root: Path, args: list[str], store: str, via_env: bool, warm: PgWarm | None
           ) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `wfrun [--store STORE] ARGS` (or WFRUN_STORE=STORE),
    cold, or forked from `warm`."""
    prefix = [*([] if via_env else ["--store", store]), "--workflows-dir", str(root / "workflows")]
    extra = {"WFRUN_STORE": store} if via_env else {}
    if warm is not None:
        reply = warm.request({"args": [*prefix, *args], "env": extra})
        return reply["rc"], reply["stdout"], reply["stderr"]
    proc = subprocess.run([sys.executable, "-m", "wfrun", *prefix, *args], capture_output=True,
                          text=True, timeout=60, cwd=root, env=clean_env(**extra))
    return proc.returncode, proc.stdout, proc.stderr


def _one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert ". " not in lines[0], lines[0]  # one sentence
    return lines[0]


@pytest.mark.parametrize("kind", ["server down", "no such database"])
def test_every_command_exits_5_naming_host_and_database(
    tmp_path: Path, kind: str, launcher: PgWarm
) -> None:
    url, host, database = _url(kind)
    write_project(tmp_path)
    for n, args in enumerate(COMMANDS):
        code, stdout, stderr = _wfrun(tmp_path, args, url, n % 2 == 1, launcher if n else None)
        assert code == 5, (kind, args, code, stdout, stderr)
        assert stdout == "", (args, stdout)
        line = _one_sentence(stderr)
        assert f"database '{database}' on {host}" in line, (args, line)
        assert "cannot connect to PostgreSQL" in line, (args, line)
    assert not (tmp_path / ".wfstate").exists()  # nothing fell back to a state directory


def test_a_url_that_cannot_be_parsed_is_a_usage_error(tmp_path: Path, launcher: PgWarm) -> None:
    write_project(tmp_path)
    for n, args in enumerate(COMMANDS):
        code, _, stderr = _wfrun(tmp_path, args, "postgresql://postgres@[::1/test", n % 2 == 1,
                                 launcher if n else None)
        assert code == 2, (args, code, stderr)
        line = _one_sentence(stderr)
        assert "is not a valid PostgreSQL URL" in line, line
