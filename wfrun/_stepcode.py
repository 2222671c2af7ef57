"""A workflow's step code: importing its step module (afresh when it or a helper beside it
changed, `_neighbours`) and finding each step's function, checked to be callable as `f(ctx)`."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from wfrun import _neighbours
from wfrun._specs import Workflow
from wfrun.errors import ManifestError

_modules: dict[str, ModuleType] = {}  # "PATH:HASH" -> the step module that ran
_HANDLERS_OK: set[tuple[str, str, str]] = set()


def code_hash(raw: bytes) -> str:
    """The hash a run keeps of a manifest or step module's bytes (`sha256:HEX`)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def file_hash(path: str) -> str:
    """`code_hash` of a file's bytes; "" if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return code_hash(fh.read())
    except OSError:
        return ""


def _import_module(workflow: Workflow) -> ModuleType:
    path = workflow.module_path
    key = f"{path}:{workflow.code_hash.get('module')}"
    if key in _modules and _neighbours.unchanged(key):
        return _modules[key]
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except OSError:
        raise ManifestError(
            f"{workflow.path}: key 'module': the step module {path} does not exist; create it "
            "or set 'module:' in the manifest"
        ) from None
    module_name = "wfrun_workflow_" + workflow.name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ManifestError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(path)
    _neighbours.forget(directory)  # a helper beside it that changed is imported afresh
    before = set(sys.modules)
    sys.path.insert(0, directory)  # so a workflow module can import its neighbours
    sys.modules[module_name] = module
    try:
        # Compiled from the bytes just read, not through the import system: a __pycache__ file
        # is trusted by its source's mtime in whole seconds and its size, so a module edited
        # within a second to the same length would run its old code under the new hash.
        with _module_output():
            exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:  # sys.exit() or KeyboardInterrupt in it too: not wfrun's exit
        sys.modules.pop(module_name, None)
        raise ManifestError(f"{path}: importing the step module failed: {_raised(exc, path)}; "
                            "fix the module so that importing it succeeds") from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
    ran = f"{path}:{code_hash(source)}"  # what ran, should the file have changed since
    _modules[ran] = module
    _neighbours.remember(ran, directory, module_name, before)
    return module


def _module_output() -> contextlib.AbstractContextManager[Any]:
    """Where a step module's top-level prints go while it is imported: stderr, in a command's
    main thread, since stdout is the command's own (`--json`: one document, nothing else).
    Other threads (a server's workers) leave sys.stdout alone: it is shared by every thread."""
    if threading.current_thread() is threading.main_thread():
        return contextlib.redirect_stdout(sys.stderr)
    return contextlib.nullcontext()


def _raised(exc: BaseException, path: str) -> str:
    """What importing a module raised, as `Type: message (line N)`; `sys.exit()` is named."""
    import traceback

    if isinstance(exc, SystemExit):
        what = f"SystemExit (sys.exit({'' if exc.code is None else repr(exc.code)}))"
    elif isinstance(exc, SyntaxError) and exc.filename == path:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    else:
        message = " ".join(str(exc).splitlines())  # the error is one line
        what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == path]
    return f"{what} (line {lines[-1]})" if lines else what


def handler_for(workflow: Workflow, step_id: str) -> Callable[..., Any]:
    """The step's function, importing the module on first use; ManifestError if missing."""
    spec = workflow.steps[step_id]
    module = _import_module(workflow)
    function = getattr(module, spec.handler or "", None)
    if not callable(function):
        raise ManifestError(
            f"{workflow.path}: step '{step_id}': key 'handler': no function "
            f"{spec.handler!r} in {workflow.module_path}; define it or set 'handler:'"
        )
    return function  # type: ignore[no-any-return]


def _check_signature(workflow: Workflow, step_id: str, function: Callable[..., Any]) -> None:
    """ManifestError unless the step's function can be called as wfrun calls it: `f(ctx)`."""
    import inspect

    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or an object without one: let it run
        return
    try:
        signature.bind(None)
    except TypeError:
        name = getattr(function, "__name__", workflow.steps[step_id].handler)
        raise ManifestError(
            f"{workflow.path}: step '{step_id}': key 'handler': function {name}{signature} in "
            f"{workflow.module_path} cannot be called with the one argument wfrun passes "
            f"(ctx); define it as 'def {name}(ctx):'"
        ) from None


def check_handlers(workflow: Workflow) -> None:
    """ManifestError unless the step module imports and each code step's function exists and
    can be called as `f(ctx)` (imports the module and inspects it once per version of it)."""
    version = (workflow.path, workflow.code_hash.get("manifest", ""),
               workflow.code_hash.get("module", ""))
    if version in _HANDLERS_OK:
        return
    if any(s.kind == "code" for s in workflow.steps.values()):
        for spec in workflow.steps.values():
            if spec.handler:
                _check_signature(workflow, spec.id, handler_for(workflow, spec.id))
    if len(_HANDLERS_OK) >= 1024:
        _HANDLERS_OK.clear()
    _HANDLERS_OK.add(version)
