"""`wfrun init`: a new workflow (manifest, step module, pytest file) in the current project."""

import os
import shlex
from typing import Annotated, Any

import typer

from ._app import JsonOpt, app, emit_json, handle_errors
from ._settings import settings

GITIGNORE_LINE = ".wfstate/"


def _gitignore(path: str) -> str:
    """Make sure `.wfstate/` is ignored: 'created', 'added' or 'present'."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(GITIGNORE_LINE + "\n")
        return "created"
    if any(line.strip() in (".wfstate", ".wfstate/", "/.wfstate", "/.wfstate/")
           for line in text.splitlines()):
        return "present"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("" if text.endswith("\n") or not text else "\n") + GITIGNORE_LINE + "\n")
    return "added"


def _named(workflows: str, name: str) -> str | None:
    """The manifest in `workflows` whose `name:` is `name` (as given under `workflows`), if any."""
    from wfrun.loader import discover, stated_name

    where = os.path.abspath(workflows)
    for path in discover(workflows):
        if stated_name(path) == name:
            return os.path.join(workflows, os.path.relpath(path, where))
    return None


@app.command()
@handle_errors
def init(
    name: Annotated[str, typer.Argument(help="Name of the new workflow: [a-z0-9][a-z0-9_-]*.")],
    template: Annotated[str, typer.Option(help="hello, approval (wait + timeout) or polling "
                                               "(rerun).")] = "hello",
    tests_dir: Annotated[str, typer.Option(help="Where the test file goes.")] = "tests",
    as_json: JsonOpt = False,
) -> None:
    """Create a workflow from a template: NAME.yaml and NAME.py in the workflows directory, a
    test using the wfrun_harness pytest fixture, and `.wfstate/` in .gitignore. Existing files
    are never overwritten, and a name another manifest has in its `name:` is refused (exit 3).

    Example: wfrun init expense-check --template approval
    """
    from wfrun import _templates
    from wfrun.errors import ConflictError, UsageError
    from wfrun.manifest import NAME_PATTERN

    if not NAME_PATTERN.fullmatch(name) or len(name) > 64:
        raise UsageError(f"invalid workflow name {name!r}: use up to 64 lowercase letters, digits, "
                         "'-' or '_', starting with a letter or digit")
    chosen = _templates.TEMPLATES.get(template)
    if chosen is None:
        raise UsageError(f"--template {template!r} is not one of "
                         f"{', '.join(_templates.TEMPLATES)}")
    workflows = settings().workflows_dir
    ident = name.replace("-", "_")
    files = {
        os.path.join(workflows, f"{name}.yaml"): chosen.manifest,
        os.path.join(workflows, f"{name}.py"): chosen.module,
        os.path.join(tests_dir, f"test_{ident}.py"): chosen.test,
    }
    taken = [p for p in [*files, os.path.join(workflows, f"{name}.yml"),
                         os.path.join(workflows, name, "workflow.yaml")] if os.path.exists(p)]
    if taken:
        raise ConflictError(f"{taken[0]} already exists; choose another name or remove it "
                            "(wfrun init never overwrites files)")
    named = _named(workflows, name)
    if named is not None:
        raise ConflictError(f"{named} already has 'name: {name}' (workflow names must be "
                            "unique); choose another name, or rename that workflow")
    default_dir = os.path.normpath(workflows) == "workflows"
    relative = None if default_dir else os.path.relpath(workflows, tests_dir)
    test_file = os.path.join(tests_dir, f"test_{ident}.py")
    for path, text in files.items():
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        body = _templates.render(text, name, relative if path == test_file else None)
        with open(path, "x", encoding="utf-8") as fh:  # "x": a file that appeared meanwhile wins
            fh.write(body)
    ignore = _gitignore(".gitignore")
    prefix = "wfrun" if default_dir else f"wfrun --workflows-dir {shlex.quote(workflows)}"
    import importlib.util

    # the test needs pytest, which wfrun itself does not install
    test = f"python -m pytest {shlex.quote(test_file)}"
    if importlib.util.find_spec("pytest") is None:
        test = f"python -m pip install pytest && {test}"
    commands = [f"{prefix} validate {name}",
                f"{prefix} start {name} --input {shlex.quote(chosen.sample_input)}", test]
    result: dict[str, Any] = {"workflow": name, "template": template, "files": list(files),
                              "gitignore": ignore, "next": commands}
    if as_json:
        emit_json(result)
        return
    note = "already ignores .wfstate/" if ignore == "present" else f".wfstate/ {ignore}"
    lines = [f"Created workflow '{name}' from the {template} template:",
             *(f"  {p}" for p in files), f"  .gitignore ({note})",
             "Next:", *(f"  {c}" for c in commands)]
    print("\n".join(lines))
