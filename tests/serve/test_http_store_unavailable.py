"""While the store cannot be reached (a database restarting, a cut connection), `wfrun serve`
answers 503 with Retry-After, so a client or a proxy knows to send the same request again; a
state that cannot be read for any other reason stays a 500. Either way the details go to the
server's log only."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import _pg
import pytest
from conftest import Project

from wfrun.clock import SystemClock
from wfrun.engine import Engine
from wfrun.http import WfrunServer
from wfrun.store import open_store

from .conftest import http, post_json

# Nothing listens on port 1: every connection is refused at once, as by a server that is down.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/wfrun_down"
RUN = "01kdvdna00c86npjd3vaajahsr"


@contextlib.contextmanager
def serving(project: Project, store_url: str) -> Iterator[str]:
    """A server whose store is `store_url`; its base URL."""
    def engine() -> Engine:
        return Engine(open_store(store_url), SystemClock(), workflows_dir=str(project.workflows))

    httpd = WfrunServer("127.0.0.1", 0, engine, workers=1)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.close()
        thread.join(5)


@pytest.fixture
def base(project: Project) -> Iterator[str]:
    """A server whose store is a PostgreSQL database that cannot be reached."""
    with serving(project, UNREACHABLE) as url:
        yield url


@pytest.mark.parametrize("path", [
    "/workflows/approval/runs",
    f"/runs/{RUN}/steps/approve/resume?token=t0ken",
    f"/runs/{RUN}/steps/approve/cancel?token=t0ken",
    f"/runs/{RUN}/events/paid?token=t0ken",
])
def test_every_endpoint_answers_503_with_retry_after_while_the_store_is_out_of_reach(
    base: str, path: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="wfrun.http")
    reply = post_json(base + path, {"approved": True}, {"Authorization": "Bearer wfr_x"})
    assert reply.status == 503, reply.text
    assert reply.headers["Retry-After"] == "1"
    assert reply.json() == {"error": "the runs' store cannot be reached for the moment; send "
                                     "this again shortly"}
    logged = [r.getMessage() for r in caplog.records]
    assert any("127.0.0.1:1" in line and "wfrun_down" in line for line in logged), logged
    assert "wfrun_down" not in reply.text  # where the database is stays in the log


def test_a_browser_gets_a_page_saying_to_try_again(base: str) -> None:
    reply = http(f"{base}/runs/{RUN}/steps/approve/resume?token=t0ken",
                 headers={"Accept": "text/html"})
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "1"
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "Try again shortly" in reply.text


def test_a_state_directory_that_cannot_be_read_is_still_a_500(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .conftest import running_server

    project.state.mkdir(parents=True, exist_ok=True)
    (project.state / "keys").mkdir(mode=0o700, exist_ok=True)
    (project.state / "keys" / "tokens.json").write_text("{not json")
    with running_server(project, monkeypatch) as server:
        reply = post_json(f"{server.base}/workflows/approval/runs", {},
                          {"Authorization": "Bearer wfr_x"})
    assert reply.status == 500, reply.text
    assert "Retry-After" not in reply.headers
    assert reply.json() == {"error": "the server cannot read its tokens; see its log"}


def test_a_database_that_does_not_exist_is_a_500_not_a_moment_s_outage(project: Project) -> None:
    """The server answers, and refuses the database for good: sending again will not help."""
    _pg.require()
    missing = _pg.server_url().rsplit("/", 1)[0] + "/wfrun_no_such_database"
    with serving(project, missing) as url:
        reply = post_json(f"{url}/workflows/approval/runs", {}, {"Authorization": "Bearer wfr_x"})
    assert reply.status == 500, reply.text
    assert "Retry-After" not in reply.headers


def test_a_wrong_token_for_a_run_that_cannot_be_read_is_the_same_404_as_for_no_run(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # a damaged snapshot answered 500 where an unknown run answers 404: anyone could tell
    # which run ids exist; the operator reads what is wrong in the log
    from .conftest import APPROVAL, APPROVAL_PY, running_server

    project.workflow("approval", APPROVAL, APPROVAL_PY)
    caplog.set_level(logging.ERROR, logger="wfrun.http")
    with running_server(project, monkeypatch) as server:
        doc = server.start("approval")
        url = doc["suspended"][0]["resume_url"]
        cancel = doc["suspended"][0]["cancel_url"]
        snapshot = next(project.state.rglob(f"{doc['run_id']}.json"))
        snapshot.write_text("{not json")
        wrong = url[:-5] + ("AAAAA" if not url.endswith("AAAAA") else "BBBBB")
        unknown = wrong.replace(doc["run_id"], "0" * len(doc["run_id"]))
        for target in (wrong, url, cancel, unknown):
            for method in ("GET", "POST"):
                reply = http(target, method, headers={"Accept": "text/html"})
                assert (reply.status, reply.json()) == (404, {"error": "not found"}), reply.text
                assert "Retry-After" not in reply.headers
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 6, logged  # one line for each request to the damaged run
    assert all(str(snapshot) in line and "\n" not in line and "not valid JSON" in line
               for line in logged), logged


def test_a_url_key_that_cannot_be_read_is_still_a_500_for_every_run(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .conftest import APPROVAL, APPROVAL_PY, running_server

    project.workflow("approval", APPROVAL, APPROVAL_PY)
    with running_server(project, monkeypatch) as server:
        doc = server.start("approval")
        url = doc["suspended"][0]["resume_url"]
        (project.state / "keys" / "url.key").write_bytes(b"short")
        snapshot = next(project.state.rglob(f"{doc['run_id']}.json"))
        for target in (url, url.replace(doc["run_id"], "0" * len(doc["run_id"]))):
            assert http(target, "POST").status == 500
        snapshot.write_text("{not json")  # the store as a whole is broken: not a 404 either
        assert http(url, "POST").status == 500
