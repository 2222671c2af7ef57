"""Replay the console blocks of README.md and docs/*.md: parse, run, mask, compare, re-record.

A ```` ```console ```` block is a transcript: a line starting with `$ ` is a command (a line
ending in `\\` continues it on the next line), the lines after it up to the next `$ ` are what
it printed. Every block of one file runs, in order, as one bash script in one scratch
directory holding a copy of the repository's `workflows/`, so a file's blocks share their
working directory, shell variables and runs. A command's output is its stdout and stderr
sent to one file (as `2>&1` would; Python is unbuffered, so the lines come in the order they
were written, as on a terminal). A code block whose first line is `# workflows/NAME` or
`# tests/NAME` is written to that path of the scratch directory when the replay reaches it
(docs/testing.md's example files), so a later command can use it. A block fenced as
```` ```console no-replay ```` is not run (the test reports it as skipped).

Outputs are compared after masking what legitimately changes between runs: generated run ids
(and the 6-character suffix the examples derive from them), URL tokens, ISO-8601 times,
durations such as `3.2 s` or `41ms`, ports and runs of spaces (a masked value may change a
column's width). The scratch directory is shown as `/home/me/tour`.

Re-recording (`WFRUN_DOCS_RECORD=1`) rewrites each block's outputs with what the commands
printed; lines whose masked text did not change keep their recorded text, and in changed lines
generated ids, tokens and times are translated to the ones already recorded, so a re-record
changes only what really changed. `WFRUN_DOCS_RECORD=fresh` writes every output as printed.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

DISPLAY_DIR = "/home/me/tour"
DISPLAY_HOME = "/home/me"
NO_REPLAY = "no-replay"

FENCE = re.compile(r"^( *)(`{3,})(.*)$")
FILE_HEADER = re.compile(r"^# ((?:workflows|tests)/[\w./-]+)$")
RUN_ID = re.compile(r"(?<![0-9A-Za-z])[0-9a-hjkmnp-tv-z]{26}(?![0-9A-Za-z])")
TOKEN = re.compile(r"(token=)([A-Za-z0-9_.@~-]+)")
ISO_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|µs|s)\b")
PORT = re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):\d{2,5}\b")
SPACES = re.compile(r" {2,}")
SCHEDULED = re.compile(r"(?<=\bsched-)([a-z0-9_-]+-)\d{8}T\d{4}(?:\d\d)?Z\b")  # its fire time


@dataclass
class Command:
    """One `$ ` command of a console block and the output recorded under it."""

    text: str
    line: int  # 1-based line of its `$ ` in the file
    expected: list[str]
    first: int  # 0-based index of its first line in the file
    after: int  # 0-based index of the line after its recorded output
    indent: str = ""  # the block's indentation (a block inside a list item)


@dataclass
class Block:
    """A fenced code block: a console transcript, or a file to write into the scratch dir."""

    info: str
    line: int  # 1-based line of the opening fence
    body: list[str]
    commands: list[Command] = field(default_factory=list)
    path: str | None = None  # for a file block

    @property
    def console(self) -> bool:
        return self.info.split()[:1] == ["console"]

    @property
    def replayable(self) -> bool:
        return self.console and NO_REPLAY not in self.info.split()[1:]


class DocError(Exception):
    """A block that cannot be replayed as written."""


def parse(text: str, name: str) -> list[Block]:
    """The fenced blocks of a markdown text, console blocks split into commands."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != indent + fence:
            j += 1
        if j == len(lines):
            raise DocError(f"{name}:{i + 1}: code block is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[i + 1:j]]
        block = Block(info=info, line=i + 1, body=body)
        if block.console:
            block.commands = _commands(body, i + 1, name, indent)
        elif block.body and (header := FILE_HEADER.match(block.body[0])):
            block.path = header.group(1)
        blocks.append(block)
        i = j + 1
    return blocks


def _commands(lines: list[str], start: int, name: str, indent: str) -> list[Command]:
    """The commands of a console block's body, whose first line is line `start` of the file."""
    commands: list[Command] = []
    k, end = 0, len(lines)
    while k < end:
        line = lines[k]
        if not (line.startswith("$ ") or line == "$"):
            raise DocError(f"{name}:{start + k + 1}: output with no command before it in a "
                           f"console block")
        first = k
        parts = [line[2:]]
        while parts[-1].endswith("\\") and k + 1 < end:
            k += 1
            parts.append(lines[k])
        k += 1
        out_start = k
        while k < end and not (lines[k].startswith("$ ") or lines[k] == "$"):
            k += 1
        commands.append(Command(text="\n".join(parts), line=start + first + 1,
                                expected=lines[out_start:k], first=start + first,
                                after=start + k, indent=indent))
    return commands


def lint(blocks: list[Block], name: str) -> list[str]:
    """Commands that cannot replay: a fixed `--now` time, or a generated run id typed in."""
    problems = []
    for block in blocks:
        if not block.replayable:
            continue
        for cmd in block.commands:
            if ISO_TIME.search(cmd.text):
                problems.append(f"{name}:{cmd.line}: a fixed time in a command does not replay on "
                                f"a later day; use a relative one such as 'tick --now +10m'")
            if RUN_ID.search(cmd.text):
                problems.append(f"{name}:{cmd.line}: the command names a generated run id, which "
                                f"differs on every replay; start that run with --run-id NAME")
    return problems


@dataclass
class Replay:
    """What running a file's blocks printed: one output (lines) and exit code per command."""

    outputs: list[list[str]]
    codes: list[int]
    complete: bool
    raw: str
    seconds: list[float]  # how long each finished command took


def environment(bindir: Path, home: Path) -> dict[str, str]:
    """A clean environment: wfrun on PATH, an empty HOME, no WFRUN_* variables, UTF-8, UTC."""
    return {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "COLUMNS": "120",
        "LINES": "40",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }


def script(blocks: list[Block], mark: str) -> str:
    """The bash script that replays the blocks: commands in order, a marker after each."""
    out = ["exec </dev/null", "__wfrun_docs_rc() { return \"$1\"; }"]
    n = 0
    for block in blocks:
        if block.path is not None:
            delim = f"WFRUN_DOCS_EOF_{mark}"
            out.append(f"mkdir -p {shlex.quote(str(Path(block.path).parent))} && "
                       f"cat > {shlex.quote(block.path)} <<'{delim}'")
            out.extend([*block.body[1:], delim])
        if not block.replayable:
            continue
        for cmd in block.commands:
            out.append(cmd.text)
            out.append(f"__wfrun_docs_status=$?; printf '\\n{mark}:%d:%d:%s\\n' {n} "
                       f"\"$__wfrun_docs_status\" \"$EPOCHREALTIME\"; "
                       f"__wfrun_docs_rc \"$__wfrun_docs_status\"")  # so that `echo $?` works
            n += 1
    return "\n".join(out) + "\n"


def run(blocks: list[Block], scratch: Path, env: dict[str, str], timeout: float) -> Replay:
    """Run the blocks' commands in one bash in `scratch`; stray background jobs are killed."""
    mark = f"@@wfrun-docs-{secrets.token_hex(8)}"
    commands = [c for b in blocks if b.replayable for c in b.commands]
    (scratch.parent / "replay.sh").write_text(script(blocks, mark))
    out_path = scratch.parent / "replay.out"
    started = time.time()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(["bash", "--noprofile", "--norc", str(scratch.parent / "replay.sh")],
                                cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            _kill_group(proc)
    raw = out_path.read_text(errors="replace")
    pieces = re.split(rf"\n{re.escape(mark)}:(\d+):(\d+):([\d.]*)\n", raw)
    outputs: list[list[str]] = []
    codes: list[int] = []
    ends: list[float] = []
    for k in range(0, len(pieces) - 1, 4):
        outputs.append(_lines(pieces[k]))
        codes.append(int(pieces[k + 2]))
        ends.append(float(pieces[k + 3] or 0))
    complete = len(outputs) == len(commands)
    if not complete:
        outputs.append(_lines(pieces[-1]))  # what the command that never finished printed
    seconds = [b - a for a, b in zip([started, *ends], ends, strict=False)]
    return Replay(outputs=outputs, codes=codes, complete=complete, raw=raw, seconds=seconds)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the replay's process group (its bash and anything it left in the background)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            continue
        break
    proc.wait()


def _lines(text: str) -> list[str]:
    if text.endswith("\n"):
        text = text[:-1]
    return [line.rstrip() for line in text.split("\n")] if text else []


def displayed(lines: list[str], scratch: Path, home: Path) -> list[str]:
    """Show the scratch and home directories as `/home/me/tour` and `/home/me`."""
    subs = []
    for path, shown in ((scratch, DISPLAY_DIR), (home, DISPLAY_HOME)):
        for variant in {str(path), os.path.realpath(path)}:
            subs.append((variant, shown))
    out = []
    for line in lines:
        for real, shown in subs:
            line = line.replace(real, shown)
        out.append(line)
    return out


class Masker:
    """Masks one side (recorded or replayed) of a file, numbering ids and tokens as they come,
    so that the same id must be in the same places on both sides."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.tokens: dict[str, int] = {}
        self.times: list[str] = []

    def mask(self, line: str) -> str:
        """The line with its varying parts replaced by placeholders."""
        line = TOKEN.sub(lambda m: f"{m.group(1)}<token:{self._number(self.tokens, m.group(2))}>",
                         line)
        for m in ISO_TIME.finditer(line):
            self.times.append(m.group(0))
        line = ISO_TIME.sub("<time>", line)
        line = SCHEDULED.sub(r"\1<time>", line)  # a scheduled run's id: sched-NAME-FIRETIME
        line = RUN_ID.sub(lambda m: f"<run:{self._number(self.ids, m.group(0))}>", line)
        for run_id, n in self.ids.items():
            line = re.sub(rf"(?<![0-9A-Za-z]){run_id[-6:]}(?![0-9A-Za-z])", f"<run:{n}:tail>", line)
        line = DURATION.sub("<duration>", line)
        line = PORT.sub(r"\1:<port>", line)
        return SPACES.sub("  ", line.rstrip())

    @staticmethod
    def _number(table: dict[str, int], value: str) -> int:
        return table.setdefault(value, len(table) + 1)


@dataclass
class Mismatch:
    """A command whose replayed output differs from the recorded one."""

    command: Command
    diff: list[str]
    code: int | None


def compare(blocks: list[Block], replay: Replay, recorded: Masker,
            replayed: Masker) -> list[Mismatch]:
    """Commands whose masked output differs from the recording."""
    commands = [c for b in blocks if b.replayable for c in b.commands]
    mismatches = []
    for k, cmd in enumerate(commands):
        actual = replay.outputs[k] if k < len(replay.outputs) else []
        want = [recorded.mask(line) for line in cmd.expected]
        got = [replayed.mask(line) for line in actual]
        if want != got or k >= len(replay.codes):
            diff = list(difflib.unified_diff(cmd.expected, actual, "recorded", "replayed",
                                             lineterm="", n=2))
            if not diff:
                diff = ["(the lines differ only in ids, tokens or times used in other places: "
                        "a different run or token where the same one was recorded)",
                        *(f"  recorded: {w}" for w in want), *(f"  replayed: {g}" for g in got)]
            mismatches.append(Mismatch(cmd, diff, replay.codes[k] if k < len(replay.codes) else None))
    return mismatches


def rerecord(text: str, blocks: list[Block], replay: Replay, fresh: bool) -> str:
    """The markdown text with every replayed command's output replaced by what it printed."""
    lines = text.split("\n")
    commands = [c for b in blocks if b.replayable for c in b.commands]
    translate = _Translation(commands, replay.outputs) if not fresh else None
    new_lines: list[str] = []
    pos = 0
    for k, cmd in enumerate(commands):
        actual = replay.outputs[k] if k < len(replay.outputs) else cmd.expected
        out_start = cmd.after - len(cmd.expected)
        new_lines.extend(lines[pos:out_start])
        new_lines.extend(cmd.indent + line if line else line for line in
                         (translate.merge(k, cmd.expected, actual) if translate else actual))
        pos = cmd.after
    new_lines.extend(lines[pos:])
    return "\n".join(new_lines)


class _Translation:
    """Maps replayed ids, tokens and times to the recorded ones, and keeps unchanged lines."""

    def __init__(self, commands: list[Command], outputs: list[list[str]]) -> None:
        recorded, replayed = Masker(), Masker()
        self.masked: list[tuple[list[str], list[str]]] = []
        for k, cmd in enumerate(commands):
            self.masked.append(([recorded.mask(line) for line in cmd.expected],
                                [replayed.mask(line) for line in
                                 (outputs[k] if k < len(outputs) else cmd.expected)]))
        by_number = {n: v for v, n in recorded.ids.items()}
        self.ids = {v: by_number[n] for v, n in replayed.ids.items() if n in by_number}
        by_number = {n: v for v, n in recorded.tokens.items()}
        self.tokens = {v: by_number[n] for v, n in replayed.tokens.items() if n in by_number}
        self.shift = timedelta(0)
        if recorded.times and replayed.times:
            self.shift = _instant(recorded.times[0]) - _instant(replayed.times[0])

    def merge(self, k: int, old: list[str], new: list[str]) -> list[str]:
        """`new` (command k's output), keeping the lines of `old` whose masked text is the same."""
        a, b = self.masked[k]
        out: list[str] = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "equal":
                out.extend(old[i1:i2])
            else:
                out.extend(self.line(line) for line in new[j1:j2])
        return out

    def line(self, line: str) -> str:
        """A replayed line in the recorded ids, tokens and times."""
        line = TOKEN.sub(lambda m: m.group(1) + self.tokens.get(m.group(2), m.group(2)), line)
        line = ISO_TIME.sub(lambda m: _shifted(m.group(0), self.shift), line)
        for new, old in self.ids.items():
            line = re.sub(rf"(?<![0-9A-Za-z]){new}(?![0-9A-Za-z])", old, line)
            line = re.sub(rf"(?<![0-9A-Za-z]){new[-6:]}(?![0-9A-Za-z])", old[-6:], line)
        return line


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _shifted(text: str, shift: timedelta) -> str:
    moved = _instant(text) + shift
    if "." in text:
        digits = len(text.split(".", 1)[1].rstrip("Z").split("+")[0].split("-")[0])
        frac = f"{moved.microsecond:06d}"[:digits]
        return moved.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- links ----------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code (other lines left empty, so that line
    numbers still hold)."""
    return "\n".join(INLINE_CODE.sub("", line) for line in prose_with_code(text).split("\n"))


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_with_code(text).split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result


def prose_with_code(text: str) -> str:
    """The text outside fenced blocks, fenced lines left empty (inline code kept: headings may
    contain it)."""
    out, fence = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1) + m.group(2)
            line = ""
        elif fence is not None:
            if line.rstrip() == fence:
                fence = None
            line = ""
        out.append(line)
    return "\n".join(out)


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of each markdown link outside code."""
    found = []
    for n, line in enumerate(prose(path.read_text()).split("\n"), 1):
        found.extend((n, m.group(2)) for m in LINK.finditer(line))
    return found


def broken_links(path: Path, repo: Path) -> list[str]:
    """Relative links of a markdown file whose file or heading does not exist."""
    problems = []
    for _, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(repo)}: link to {target!r}"
        if not dest.exists():
            problems.append(f"{where}: {file_part} does not exist")
            continue
        if repo not in dest.parents and dest != repo:
            problems.append(f"{where}: points outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{where}: {dest.relative_to(repo)} has no heading #{anchor}")
    return problems
