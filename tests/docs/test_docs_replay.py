"""The docs cannot drift from the product: every console block of README.md and docs/*.md is
replayed and its output compared (tests/_docs_replay.py says how), and relative links resolve.

After a change of behaviour or output, re-record every block with one command:

    WFRUN_DOCS_RECORD=1 .venv/bin/pytest -q -p no:cacheprovider tests/docs/test_docs_replay.py

then read the diff of README.md and docs/ (`WFRUN_DOCS_RECORD=fresh` rewrites every id and
time as printed, instead of keeping the recorded ones where only they changed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from _docs_replay import (
    NO_REPLAY,
    Block,
    DocError,
    Masker,
    Replay,
    anchors,
    broken_links,
    compare,
    displayed,
    environment,
    links,
    lint,
    parse,
    rerecord,
    run,
)
from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RECORD = os.environ.get("WFRUN_DOCS_RECORD", "")
TIMEOUT = 240.0  # for one file's blocks; they take a few seconds


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def _with_console_blocks() -> list[Path]:
    return [p for p in DOCS if re.search(r"^```console", p.read_text(), re.MULTILINE)]


def _not_replayed() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        for block in parse(path.read_text(), _name(path)):
            if block.console and not block.replayable:
                found.append((_name(path), block.line, block.info))
    return found


def _serve_port(commands: list[str]) -> int | None:
    for text in commands:
        if re.search(r"\bwfrun serve\b", text):
            m = re.search(r"--port[ =](\d+)", text)
            return int(m.group(1)) if m else 8787
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Replayed:
    """One file's blocks and what replaying them printed (or why they could not be run)."""

    def __init__(self, text: str, blocks: list[Block], replay: Replay | None = None,
                 problem: str = "") -> None:
        self.text, self.blocks, self.replay, self.problem = text, blocks, replay, problem


def _replay_file(doc: Path, base: Path) -> _Replayed:
    """Run a file's console blocks in a scratch directory under `base`."""
    name = _name(doc)
    text = doc.read_text()
    blocks = parse(text, name)
    problems = lint(blocks, name)
    if problems:
        return _Replayed(text, blocks, problem="\n".join(problems))
    commands = [c for b in blocks if b.replayable for c in b.commands]
    port = _serve_port([c.text for c in commands])
    if port is not None and not _port_is_free(port):
        return _Replayed(text, blocks, problem=f"{name} starts 'wfrun serve' on port {port}, which "
                                               f"something else is using; stop it and run the test again")
    scratch, home = base / "tour", base / "home"
    # a page whose commands do not use the scheduled example gets none: its ticks would run it
    scheduled = [] if any("daily-report" in c.text for c in commands) else ["daily-report.*"]
    shutil.copytree(REPO / "workflows", scratch / "workflows",
                    ignore=shutil.ignore_patterns("__pycache__", *scheduled))
    home.mkdir()
    replay = run(blocks, scratch, environment(Path(sys.executable).parent, home), TIMEOUT)
    replay.outputs = [displayed(lines, scratch, home) for lines in replay.outputs]
    return _Replayed(text, blocks, replay)


@pytest.fixture(scope="module")
def replays(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Future[_Replayed]]]:
    """The selected files' replays, started at once, as many at a time as there are CPUs: each
    runs in its own processes, so the slowest file bounds the time, not their sum. (Under
    xdist each test replays its own file, and xdist spreads the files.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield {}
        return
    wanted = [item.callspec.params["doc"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_console_blocks_replay"
              and hasattr(item, "callspec")]
    with ThreadPoolExecutor(max_workers=max(1, min(2, len(os.sched_getaffinity(0))))) as pool:
        futures = {doc: pool.submit(_replay_file, doc, tmp_path_factory.mktemp("docs-replay"))
                   for doc in sorted(wanted, key=lambda p: -p.stat().st_size)}
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("doc", _with_console_blocks(), ids=_name)
def test_console_blocks_replay(doc: Path, tmp_path: Path,
                               replays: dict[Path, Future[_Replayed]]) -> None:
    """Each file's console blocks, run in order in a scratch directory, print what they show."""
    name = _name(doc)
    done = replays[doc].result() if doc in replays else _replay_file(doc, tmp_path)
    assert not done.problem, done.problem
    text, blocks, replay = done.text, done.blocks, done.replay
    assert replay is not None
    commands = [c for b in blocks if b.replayable for c in b.commands]
    assert commands
    unfinished = ""
    if not replay.complete:
        cmd = commands[len(replay.codes)]
        unfinished = (f"{name}:{cmd.line}: the replay stopped at `{cmd.text}` (it did not end "
                      f"within {TIMEOUT:.0f} s, or the shell exited); it printed:\n"
                      + "\n".join(replay.outputs[-1][-20:]))
    if RECORD:
        new = rerecord(text, blocks, replay, fresh=RECORD == "fresh")
        if doc.read_text() != text:
            pytest.fail(f"{name} changed while it was replayed; record again")
        if new != text:
            doc.write_text(new)
        assert not unfinished, unfinished
        return
    assert not unfinished, unfinished
    mismatches = compare(blocks, replay, Masker(), Masker())
    report = []
    for m in mismatches:
        code = "" if m.code is None else f" (exit {m.code})"
        report.append(f"{name}:{m.command.line}: $ {m.command.text}{code}\n" + "\n".join(m.diff))
    assert not mismatches, (
        f"{len(mismatches)} command(s) of {name} print something else than the docs show "
        f"(re-record with WFRUN_DOCS_RECORD=1 if the change is intended):\n\n"
        + "\n\n".join(report))


@pytest.mark.parametrize("where", [f"{n}:{line} ({info})" for n, line, info in _not_replayed()]
                         or ["none"])
def test_console_blocks_not_replayed_are_reported(where: str) -> None:
    """A console block fenced `console no-replay` is not run: say so, block by block."""
    if where != "none":
        pytest.skip(f"console block {where} is marked {NO_REPLAY} and was not replayed")


def test_the_harness_catches_a_changed_output_and_masks_only_what_varies(tmp_path: Path) -> None:
    """A wrong recorded output fails; a different id, token, time or duration does not."""
    doc = "\n".join([
        "```console",
        "$ echo 'Run 01m81saz3nma74s583vn7kjk5g at 2026-11-22T14:07:38.126Z took 3.2 s'",
        "Run 01m81saz3nma74s583vn7kjk5g at 2026-11-22T14:07:38.126Z took 3.2 s",
        "$ echo http://127.0.0.1:8787/r?token=abc_DEF-1; cd sub 2>/dev/null || mkdir sub",
        "http://127.0.0.1:8787/r?token=abc_DEF-1",
        "$ X=41; echo exp-7kjk5g",
        "exp-7kjk5g",
        "```",
        "```console",
        "$ echo \"$X\" \"$(basename \"$PWD\")\" 01m8t9pzjtsq2hn1h229jb0f79 2026-12-02T02:35:45Z 41ms",
        "41 tour 01m81saz3nma74s583vn7kjk5g 2026-11-22T14:08:00Z 9ms",
        "$ printf 'one\\ntwo\\n'; echo three >&2",
        "one",
        "two",
        "three",
        "$ (exit 3)",
        "$ echo $?",
        "3",
        "```",
    ])
    blocks = parse(doc, "t.md")
    scratch, home = tmp_path / "tour", tmp_path / "home"
    scratch.mkdir()
    home.mkdir()
    replay = run(blocks, scratch, environment(Path(sys.executable).parent, home), 30)
    assert replay.complete and replay.codes == [0, 0, 0, 0, 0, 3, 0]
    # the ids differ from the recorded ones in the last block: same id twice, so different
    # runs on one side and the same on the other is a mismatch
    [mismatch] = compare(blocks, replay, Masker(), Masker())
    assert mismatch.command.line == 10
    fixed = doc.replace("01m81saz3nma74s583vn7kjk5g 2026-11-22T14:08:00Z",
                        "01m8t9pzjtsq2hn1h229jb0f79 2026-11-22T14:08:00Z")
    blocks = parse(fixed, "t.md")
    assert compare(blocks, replay, Masker(), Masker()) == []
    wrong = fixed.replace("\ntwo\n", "\n2\n")
    blocks = parse(wrong, "t.md")
    [mismatch] = compare(blocks, replay, Masker(), Masker())
    assert "-2" in mismatch.diff and "+two" in mismatch.diff
    assert rerecord(wrong, blocks, replay, fresh=False) == fixed


def test_rerecording_keeps_recorded_ids_and_times_in_changed_lines(tmp_path: Path) -> None:
    """A changed line is written with the ids, tokens and times the file already shows."""
    doc = "\n".join([
        "```console",
        "$ echo 'Run 01m81saz3nma74s583vn7kjk5g since 2026-11-22T14:07:38.126Z'; echo old",
        "Run 01m81saz3nma74s583vn7kjk5g since 2026-11-22T14:07:38.126Z",
        "old",
        "```",
    ])
    blocks = parse(doc, "t.md")
    scratch, home = tmp_path / "tour", tmp_path / "home"
    scratch.mkdir()
    home.mkdir()
    replay = run(blocks, scratch, environment(Path(sys.executable).parent, home), 30)
    replay.outputs = [["Run 01m8t9pzjtsq2hn1h229jb0f79 since 2026-12-02T02:00:00.000Z",
                       "new for 01m8t9pzjtsq2hn1h229jb0f79 (exp-jb0f79) at 2026-12-02T02:01:00.500Z"]]
    assert rerecord(doc, blocks, replay, fresh=False).split("\n")[2:4] == [
        "Run 01m81saz3nma74s583vn7kjk5g since 2026-11-22T14:07:38.126Z",
        "new for 01m81saz3nma74s583vn7kjk5g (exp-7kjk5g) at 2026-11-22T14:08:38.626Z"]
    assert rerecord(doc, blocks, replay, fresh=True).split("\n")[2:4] == replay.outputs[0]


def test_a_block_that_cannot_replay_is_refused() -> None:
    """Fixed `--now` times and generated run ids in commands are named with their line."""
    blocks = parse("x\n```console\n$ wfrun tick --now 2026-11-22T14:08:00Z\n```\n", "t.md")
    assert lint(blocks, "t.md") == [
        "t.md:3: a fixed time in a command does not replay on a later day; use a relative one "
        "such as 'tick --now +10m'"]
    with pytest.raises(DocError, match=r"t\.md:2: output with no command"):
        parse("```console\nstray output\n```\n", "t.md")


def test_relative_links_resolve() -> None:
    """Every relative link of README.md and docs/ names a file that exists (and a heading of
    it that exists, for a link with #anchor)."""
    problems = [p for path in DOCS for p in broken_links(path, REPO)]
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    """A newcomer starting at the README can reach every page of docs/ by following links."""
    seen, todo = {REPO / "README.md"}, [REPO / "README.md"]
    while todo:
        page = todo.pop()
        for _, target in links(page):
            file_part = target.partition("#")[0]
            if not file_part or re.match(r"^[a-z][a-z0-9+.-]*:", file_part):
                continue
            dest = (page.parent / file_part).resolve()
            if dest.suffix == ".md" and dest.exists() and dest not in seen:
                seen.add(dest)
                todo.append(dest)
    assert [_name(p) for p in DOCS if p not in seen] == []


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    """broken_links names a link to a missing file and to a heading that is not there."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n\n## `wfrun retry RUN [--step STEP]`\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](docs/b.md#wfrun-retry-run---step-step) [gone](docs/c.md) "
                    "[nohead](docs/b.md#nope) `[code](docs/x.md)` [web](https://x.org/y)\n")
    assert anchors((tmp_path / "docs" / "b.md").read_text()) == {"title",
                                                                  "wfrun-retry-run---step-step"}
    assert broken_links(page, tmp_path) == [
        "a.md: link to 'docs/c.md': docs/c.md does not exist",
        "a.md: link to 'docs/b.md#nope': docs/b.md has no heading #nope"]


def test_no_page_is_a_diary() -> None:
    """The docs say what wfrun is and does, not the story of how it was built."""
    found = [f"{_name(p)}:{n}: {line.strip()}" for p in DOCS
             for n, line in enumerate(p.read_text().split("\n"), 1)
             if re.search(r"\bsessions?\b", line, re.IGNORECASE)]
    assert not found, "\n".join(found)
