"""docs/testing.md stands alone: every test it shows runs beside its example workflow (a
scheduled workflow in the directory changes nothing), and it names no file of wfrun's own
repository that a user who installed wfrun does not have."""

from __future__ import annotations

import re
from pathlib import Path

from .test_testing import pytest_in

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
FILE = re.compile(r"```(?:yaml|python)\n# ((?:workflows|tests)/[\w.-]+)\n(.*?)```", re.DOTALL)


def block_after(text: str, heading: str) -> str:
    """The first python block after `heading`."""
    rest = text[text.index(heading):]
    rest = rest[rest.index("```python\n") + len("```python\n"):]
    return rest[:rest.index("\n```")]


def test_every_test_the_guide_shows_passes(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    for name, body in FILE.findall(text):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "workflows" / "heartbeat.yaml").write_text(
        "name: heartbeat\nschedule: {every: 1h}\nsteps: [{id: beat}]\n")
    (tmp_path / "workflows" / "heartbeat.py").write_text('def beat(ctx):\n    return "ok"\n')
    (tmp_path / "tests" / "test_heartbeat.py").write_text(
        "import pytest\n\n" + block_after(text, "## Scheduled workflows") + "\n")
    (tmp_path / "tests" / "test_refund_cli.py").write_text(
        block_after(text, "## Testing through the command line") + "\n")
    proc = pytest_in(tmp_path, "tests")
    assert "5 passed" in proc.stdout, proc.stdout + proc.stderr


def test_the_guide_names_only_files_it_shows() -> None:
    text = GUIDE.read_text()
    shown = {name for name, _ in FILE.findall(text)} | {"tests/test_refund_cli.py"}
    named = set(re.findall(r"\btests/[\w./-]+\.py\b", text))
    assert named <= shown, f"docs/testing.md names files a user does not have: {named - shown}"
