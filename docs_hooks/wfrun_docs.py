"""MkDocs hooks of wfrun's documentation site (mkdocs.yml `hooks:`), run at build time.

- The home page is README.md, its links pointed at the site's pages (no second landing page
  to keep in step with it).
- `<!-- wfrun:cli-reference -->` in a page becomes the reference of every command and option,
  read from the command line itself (typer's click command tree), so it cannot drift.
- `<!-- wfrun:examples -->` becomes one section per workflow of `workflows/`: its description,
  its graph drawn by `wfrun graph` (Mermaid, rendered by Material), and its two files.
- A link to a file of `workflows/` (outside the site) points at that workflow's section of the
  examples page; a link to README.md at the home page.

Nothing here reaches the network.
"""

from __future__ import annotations

import html
import logging
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
CLI_MARKER = "<!-- wfrun:cli-reference -->"
EXAMPLES_MARKER = "<!-- wfrun:examples -->"
EXAMPLES_PAGE = "examples.md"

log = logging.getLogger("mkdocs.hooks.wfrun")  # under "mkdocs": a warning fails --strict

_WORKFLOW_LINK = re.compile(r"\]\((?:\.\./)?workflows/([A-Za-z0-9_.-]+?)\.(?:yaml|yml|py)\)")
_WORKFLOWS_DIR_LINK = re.compile(r"\]\((?:\.\./)?workflows/?\)")
_README_LINK = re.compile(r"\]\(\.\./README\.md(#[^)]*)?\)")
_DOCS_LINK = re.compile(r"\]\(docs/([^)]*)\)")


# --- hooks ----------------------------------------------------------------------------------

def on_files(files: Any, config: Any) -> Any:
    """Add the home page, index.md, made from README.md."""
    from mkdocs.structure.files import File

    if files.get_file_from_path("index.md") is None:
        files.append(File.generated(config, "index.md", abs_src_path=str(REPO / "README.md")))
    return files


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when README.md or a workflow changes, too."""
    server.watch(str(REPO / "README.md"))
    server.watch(str(WORKFLOWS))
    return server


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Generate the marked parts of a page and point links outside docs/ at pages."""
    if page.file.src_uri == "index.md":
        markdown = _DOCS_LINK.sub(r"](\1)", markdown)
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if EXAMPLES_MARKER in markdown:
        markdown = markdown.replace(EXAMPLES_MARKER, examples())
    markdown = _WORKFLOW_LINK.sub(lambda m: f"]({EXAMPLES_PAGE}#{_slug(m.group(1))})", markdown)
    markdown = _WORKFLOWS_DIR_LINK.sub(f"]({EXAMPLES_PAGE})", markdown)
    return _README_LINK.sub(lambda m: f"](index.md{m.group(1) or ''})", markdown)


# --- the command-line reference -------------------------------------------------------------

def cli_reference() -> str:
    """Markdown for every command of `wfrun` and its options, read from the click tree."""
    root = _root()
    ctx = root.context_class(root, info_name="wfrun")
    out = ["## Global options", "", "Given before the command (`wfrun --state-dir DIR list`). "
           "Every command also takes `--help`, which prints what this page shows for it.",
           "", "```text", root.get_usage(ctx), "```", "", *_params(root, ctx)]
    out += _commands(root, ctx)
    return "\n".join(out) + "\n"


def _commands(group: Any, ctx: Any) -> list[str]:
    out: list[str] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = command.context_class(command, info_name=name, parent=ctx)
        path = sub.command_path
        out += ["", f"## `{path}`", "", "```text", command.get_usage(sub), "```", ""]
        out += _help(command.help or "")
        out += _params(command, sub)
        if hasattr(command, "list_commands"):  # a group: its subcommands
            out += _commands(command, sub)
    return out


def _help(text: str) -> list[str]:
    """A command's help: paragraphs as text, `Example:` paragraphs as a console block."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", textwrap.dedent(text).strip()):
        lines = [line for line in para.split("\n") if line.strip() != "\b"]
        if not lines:
            continue
        if lines[0].startswith("Example:"):
            commands = [lines[0][len("Example:"):].strip(), *(line.strip() for line in lines[1:])]
            out += ["Example:", "", "```sh", *[c for c in commands if c], "```", ""]
        else:
            out += [_escape(" ".join(line.strip() for line in lines)), ""]
    return out


def _params(command: Any, ctx: Any) -> list[str]:
    """Tables of a command's arguments and options."""
    arguments, options = [], []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            metavar = param.make_metavar(ctx) if _takes_ctx(param.make_metavar) else param.make_metavar()
            need = "required" if param.required else "optional"
            help_text = getattr(param, "help", None) or ""
            arguments.append(f"| `{metavar}` | {_escape(help_text)} ({need}) |")
        elif not getattr(param, "hidden", False) and param.name != "help":
            record = param.get_help_record(ctx)
            if record is not None:
                names, help_text = record
                options.append(f"| `{names}` | {_escape(help_text)} |")
    out: list[str] = []
    if arguments:
        out += ["| argument | meaning |", "|---|---|", *arguments, ""]
    if options:
        out += ["| option | meaning |", "|---|---|", *options, ""]
    return out


def _takes_ctx(method: Any) -> bool:
    import inspect

    return "ctx" in inspect.signature(method).parameters


def _escape(text: str) -> str:
    """Text from --help as Markdown: HTML and emphasis characters shown as they are, outside
    `code`."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        part = html.escape(parts[i], quote=False)
        parts[i] = re.sub(r"([*_\[\]|\\])", r"\\\1", part)
    return "".join(parts)


# --- the examples ---------------------------------------------------------------------------

def examples() -> str:
    """One section per workflow of workflows/: description, graph, manifest and module."""
    from typer.testing import CliRunner

    from wfrun.cli import app

    graph_missing = "graph" not in _command_names()
    out: list[str] = []
    if graph_missing:
        log.info("wfrun has no 'graph' command: the examples page shows no graphs")
        out += ['!!! warning "No graphs"', "",
                "    This build of wfrun has no `wfrun graph` command, so the workflows below "
                "are shown without their graphs.", ""]
    for manifest in sorted(WORKFLOWS.glob("*.yaml")):
        data = yaml.safe_load(manifest.read_text()) or {}
        name = data.get("name") or manifest.stem
        out += [f"## {manifest.stem}", ""]
        if name != manifest.stem:
            out += [f"Workflow `{name}`.", ""]
        if data.get("description"):
            out += [_escape(str(data["description"])), ""]
        if not graph_missing:
            result = CliRunner().invoke(app, ["--workflows-dir", str(WORKFLOWS), "graph",
                                              str(manifest)])
            if result.exit_code != 0:
                log.warning("wfrun graph %s failed (exit %s): %s", manifest.name, result.exit_code,
                            (result.stderr or result.output).strip())
            else:
                out += [f"`wfrun graph {name}`:", "", "```mermaid", result.stdout.rstrip(), "```", ""]
        else:  # no picture: at least the steps
            steps = data.get("steps") or []
            out += ["Steps: " + ", ".join(f"`{s.get('id')}`" for s in steps
                                          if isinstance(s, dict)) + ".", ""]
        module = manifest.with_suffix(".py")
        for path, lang in ((manifest, "yaml"), (module, "python")):
            if path.exists():
                out += [f'??? example "workflows/{path.name}"', "", f"    ```{lang}",
                        *[f"    {line}" if line else "" for line in path.read_text().split("\n")],
                        "    ```", ""]
    return "\n".join(out)


def _root() -> Any:
    """The click command of `wfrun`, with every command registered."""
    import typer

    from wfrun.cli import app

    return typer.main.get_command(app)


def _command_names() -> list[str]:
    root = _root()
    return list(root.list_commands(root.context_class(root, info_name="wfrun")))


def _slug(name: str) -> str:
    """The anchor of a heading `## name` (GitHub's rule, as mkdocs.yml's toc slugify)."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")
