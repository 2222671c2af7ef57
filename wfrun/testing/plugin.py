"""pytest plugin (entry point `pytest11`): the `wfrun_harness` fixture.

Loading it costs next to nothing and changes nothing for projects that do not use the fixture:
wfrun's engine is imported only when a test asks for `wfrun_harness`.

Where the fixture finds workflows, first match wins: the `wfrun(workflows_dir=...)` marker
(relative to the test file), the `wfrun_workflows_dir` ini option (relative to the ini file),
the `WFRUN_WORKFLOWS_DIR` environment variable, then a `workflows/` directory in the rootdir,
beside the test file or in one of its parents, or in the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wfrun.testing import Harness


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the `wfrun_workflows_dir` ini option."""
    parser.addini("wfrun_workflows_dir",
                  "directory of the workflows the wfrun_harness fixture runs", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the `wfrun` marker."""
    config.addinivalue_line(
        "markers",
        "wfrun(workflows_dir=None, start=None, schedules=None): where wfrun_harness finds "
        "workflows (relative to the test file), the fake clock's start time, and which "
        "schedules fire (True: all, or a list of workflow names; by default none)",
    )


MARKER_KEYWORDS = ("workflows_dir", "start", "schedules")


def marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `wfrun` marker's keywords for the requesting test, from every `wfrun` marker that
    applies (the test's, its class's, its module's `pytestmark`), the nearest winning for each
    keyword; the test errors out on a positional argument or an unknown keyword."""
    options: dict[str, Any] = {}
    for marker in request.node.iter_markers("wfrun"):  # the nearest first
        unknown = [key for key in marker.kwargs if key not in MARKER_KEYWORDS]
        if marker.args or unknown:
            what = (f"unknown keyword {', '.join(map(repr, unknown))}" if unknown
                    else f"positional argument {marker.args[0]!r}")
            keys = [f"{key}=..." for key in MARKER_KEYWORDS]
            pytest.fail(f"@pytest.mark.wfrun(...) has {what}; it takes "
                        f"{', '.join(keys[:-1])} and {keys[-1]}", pytrace=False)
        for key, value in marker.kwargs.items():
            if value is not None:
                options.setdefault(key, value)
    return options


def workflows_dir_for(request: pytest.FixtureRequest) -> Path:
    """The workflows directory for the requesting test (see the module docstring)."""
    test_dir = Path(request.path).parent
    marked = marker_options(request).get("workflows_dir")
    if marked:
        return test_dir / str(marked)
    config = request.config
    ini = str(config.getini("wfrun_workflows_dir") or "")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / ini
    env = os.environ.get("WFRUN_WORKFLOWS_DIR")
    if env:
        return Path(env)
    candidates = [config.rootpath / "workflows", test_dir / "workflows",
                  *(p / "workflows" for p in test_dir.parents), Path.cwd() / "workflows"]
    return next((c for c in candidates if c.is_dir()), config.rootpath / "workflows")


@pytest.fixture
def wfrun_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A `wfrun.testing.Harness` over the project's workflows, with its own state directory in
    `tmp_path`, a fake clock starting at `DEFAULT_START` (or the marker's `start`), and no
    schedule firing unless the marker's `schedules` says so; a value the harness refuses fails
    the test with its message, as an unknown marker keyword does."""
    from wfrun.errors import WfrunError
    from wfrun.testing import DEFAULT_START, Harness

    options = marker_options(request)
    start = options.get("start") or DEFAULT_START
    try:
        return Harness(workflows_dir_for(request), tmp_path / ".wfstate", start=start,
                       schedules=options.get("schedules", False))
    except WfrunError as exc:  # a bad marker value (start=, schedules=): said, no traceback
        pytest.fail(f"wfrun_harness: {exc.message}", pytrace=False)
