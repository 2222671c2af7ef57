"""The documentation site builds with `mkdocs build --strict` (mkdocs.yml): every page of docs/
is in the nav, every link and anchor resolves, the command reference is generated from the
CLI, and every example workflow is drawn. Needs the docs extra (`pip install -e '.[docs]'`):
without it the tests skip, except in CI (CI=true), where they fail."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("CI needs the docs extra for the documentation site's tests: "
                    "pip install -e '.[docs]'", pytrace=False)
    pytest.skip("mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')",
                allow_module_level=True)


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def _commands() -> list[str]:
    import typer

    from wfrun.cli import app

    root: Any = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="wfrun")
    return [name for name in root.list_commands(ctx) if not root.get_command(ctx, name).hidden]


def test_the_site_builds_strict_with_the_generated_pages(tmp_path: Path) -> None:
    """The real docs build with --strict; the reference lists every command with its options,
    and the examples page has a Mermaid graph per workflow, made at build time."""
    site = tmp_path / "site"
    done = _build(REPO, site)
    assert done.returncode == 0, (
        "mkdocs build --strict failed (a page of docs/ missing from the nav in mkdocs.yml, or a "
        "broken link or anchor?):\n" + done.stdout + done.stderr)
    cli = html.unescape((site / "cli" / "index.html").read_text())
    for name in _commands():
        assert f'id="wfrun-{name}"' in cli, f"the command reference lacks wfrun {name}"
    assert "--workflows-dir" in cli and "--run-id" in cli and "Exit codes" in cli
    examples = (site / "examples" / "index.html").read_text()
    for manifest in sorted((REPO / "workflows").glob("*.yaml")):
        section = examples.split(f'id="{manifest.stem}"', 1)
        assert len(section) == 2, f"examples page has no section for {manifest.name}"
        first = section[1].split("<h2 ", 1)[0]
        assert '<pre class="mermaid"><code>flowchart' in first, f"no graph for {manifest.name}"
    home = (site / "index.html").read_text()
    assert "Quick start" in home and 'href="tutorial/"' in home  # the README, links pointed at pages


def test_a_page_missing_from_the_nav_or_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    """With mkdocs.yml's settings (inherited), a page left out of the nav and a link to a
    missing heading each fail --strict."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[ok](b.md#there) [gone](b.md#no-such-heading)\n")
    (docs / "b.md").write_text("# B\n\n## There\n")
    (docs / "stray.md").write_text("# Stray\n\nA page nobody listed.\n")
    (tmp_path / "mkdocs.yml").write_text(
        f"INHERIT: {REPO / 'mkdocs.yml'}\ndocs_dir: docs\nhooks: []\n"
        "nav:\n  - Home: index.md\n  - B: b.md\n")
    done = _build(tmp_path, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert re.search(r"not included in the \"nav\" configuration:\s+- stray\.md", out), out
    assert "no-such-heading" in out and "#there" not in out, out
