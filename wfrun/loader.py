"""Finding workflows on disk and reading their manifests safely (their step code: `_stepcode`)."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Protocol

from wfrun import _schema
from wfrun._specs import Workflow
from wfrun._stepcode import check_handlers, code_hash, file_hash
from wfrun.errors import ManifestError, NotFoundError
from wfrun.manifest import NAME_PATTERN, SCHEMA_KEYS, parse_manifest

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_NODES = 100_000  # after alias expansion: stops YAML alias bombs
_workflows: dict[tuple[str, bool], tuple[tuple[tuple[int, int, int] | None, ...], Workflow]] = {}


def find_manifest(name_or_path: str, workflows_dir: str) -> str:
    """Resolve `NAME` (NAME.yaml, NAME.yml, NAME/workflow.yaml, else the manifest whose `name:`
    is NAME) or a manifest path."""
    looks_like_path = os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml"))
    if looks_like_path:
        if os.path.isfile(name_or_path):
            return os.path.abspath(name_or_path)
        inside = os.path.join(name_or_path, "workflow.yaml")
        if os.path.isfile(inside):  # a NAME/ directory given by its path
            return os.path.abspath(inside)
        stem = os.path.splitext(os.path.basename(name_or_path))[0]
        hint = (f" (did you mean 'wfrun start {stem}'? it is in {workflows_dir})"
                if os.path.isfile(os.path.join(workflows_dir, os.path.basename(name_or_path)))
                else "")
        raise NotFoundError(
            f"manifest file {name_or_path} does not exist; give the path of a manifest, or a "
            f"workflow's name ('wfrun workflows' lists them){hint}"
        )
    problem = directory_problem(workflows_dir)
    if problem is not None:
        raise NotFoundError(f"no workflow {name_or_path!r}: {problem}")
    candidates = [
        os.path.join(workflows_dir, name_or_path + ".yaml"),
        os.path.join(workflows_dir, name_or_path + ".yml"),
        os.path.join(workflows_dir, name_or_path, "workflow.yaml"),
    ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    named = [path for path, name in manifest_names(workflows_dir) if name == name_or_path]
    if len(named) == 1:
        return named[0]
    if named:
        raise ManifestError(
            f"{len(named)} manifests are named {name_or_path!r} ({', '.join(named)}); give "
            "one of them by its path, or rename all but one ('name:' must be unique)"
        )
    raise NotFoundError(
        f"no workflow {name_or_path!r}: looked for {', '.join(candidates)} and for a manifest "
        f"with 'name: {name_or_path}'; run 'wfrun workflows' to see what is there"
    )


def directory_problem(workflows_dir: str, advice: bool = True) -> str | None:
    """What is wrong with a workflows directory (it does not exist, or is a file), with what
    to do unless `advice` is false; None when it is a directory."""
    where = os.path.abspath(workflows_dir)
    if os.path.isdir(workflows_dir):
        return None
    if os.path.lexists(workflows_dir):
        what = "a file, not a directory" if os.path.isfile(workflows_dir) else "not a directory"
        fact, todo = (f"the workflows directory {where} is {what}", "name the directory that "
                      "holds your manifests with --workflows-dir or WFRUN_WORKFLOWS_DIR")
    else:
        fact, todo = (f"the workflows directory {where} does not exist", "run wfrun from the "
                      "project directory, name yours with --workflows-dir or "
                      "WFRUN_WORKFLOWS_DIR, or create it with a first workflow: 'wfrun init NAME'")
    return f"{fact}; {todo}" if advice else fact


def manifest_names(workflows_dir: str) -> list[tuple[str, str]]:
    """(path, `name:`) of every valid manifest in the workflows directory (invalid ones left
    out: `wfrun validate` reports them)."""
    found = []
    for path in discover(workflows_dir):
        try:
            found.append((path, load_workflow(path, check_code=False).name))
        except (ManifestError, NotFoundError):
            continue
    return found


def name_conflicts(workflows_dir: str) -> dict[str, str]:
    """Manifests that `wfrun start NAME` cannot reach by their `name:`, with why (by path):
    two manifests with one name, or a name that is another manifest's file name."""
    names = manifest_names(workflows_dir)
    by_file: dict[str, str] = {}
    for path, _ in names:
        by_file.setdefault(_default_name(path), path)
    problems: dict[str, str] = {}
    for path, name in names:
        others = [other for other, same in names if same == name and other != path]
        if others:
            problems[path] = (f"{path}: key 'name': {name!r} is also the name of "
                              f"{', '.join(others)}; workflow names must be unique, rename one")
        elif name != _default_name(path) and name in by_file:
            problems[path] = (f"{path}: key 'name': {name!r} is the file name of "
                              f"{by_file[name]}, so 'wfrun start {name}' starts that one; "
                              "rename one of them")
    return problems


def discover(workflows_dir: str) -> list[str]:
    """Paths of every manifest in the workflows directory, sorted by name."""
    if not os.path.isdir(workflows_dir):
        return []
    found = []
    for entry in sorted(os.listdir(workflows_dir)):
        path = os.path.join(workflows_dir, entry)
        if entry.endswith((".yaml", ".yml")) and os.path.isfile(path):
            found.append(os.path.abspath(path))
        elif os.path.isfile(os.path.join(path, "workflow.yaml")):
            found.append(os.path.abspath(os.path.join(path, "workflow.yaml")))
    return found


def stated_name(path: str) -> str:
    """The name of the workflow of manifest `path`, valid or not: its `name:` if that can be
    read and is a valid name, else its file stem (as for a manifest without `name:`); for a
    report that names a manifest which does not load."""
    with contextlib.suppress(ManifestError, OSError):
        if os.path.getsize(path) <= MAX_MANIFEST_BYTES:
            with open(path, "rb") as fh:
                data = _read_yaml(path, fh.read())
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
                return name
    return _default_name(path)


def _default_name(path: str) -> str:
    base = os.path.basename(path)
    if base == "workflow.yaml":
        return os.path.basename(os.path.dirname(path))
    return os.path.splitext(base)[0]


class ManifestCache(Protocol):
    """Where parsed manifests are kept between processes (the store: see
    `Store.cached_manifest` and `Store.cache_manifest` for the contract)."""

    def cached_manifest(self, digest: str) -> Any:
        """The document cached under `digest`, or None."""

    def cache_manifest(self, digest: str, document: Any) -> None:
        """Remember `document` under `digest` (best effort)."""


_unique_loader: Any = None


def _yaml_loader() -> Any:
    """The safe YAML loader, refusing a mapping that repeats a key (YAML says keys are unique;
    PyYAML would silently keep the last one, hiding a typo such as two `id:` in one step)."""
    global _unique_loader
    if _unique_loader is None:
        import yaml

        base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class UniqueKeyLoader(base):  # type: ignore[misc]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: set[tuple[str, str]] = set()
                for key_node, _ in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.tag != \
                            "tag:yaml.org,2002:merge":
                        key = (key_node.tag, key_node.value)
                        if key in seen:
                            raise yaml.constructor.ConstructorError(
                                None, None, f"duplicate key {key_node.value!r}",
                                key_node.start_mark)
                        seen.add(key)
                return super().construct_mapping(node, deep=deep)

        _unique_loader = UniqueKeyLoader
    return _unique_loader


def _read_yaml(path: str, raw: bytes) -> object:
    import yaml

    loader = _yaml_loader()
    try:
        data = yaml.load(raw, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ManifestError(f"{path}: the YAML is nested too deeply") from None
    _check_size(path, data)
    return data


def _check_size(path: str, data: object) -> None:
    """Walk the document counting nodes as if aliases were expanded (alias bombs stop here)."""
    budget = MAX_MANIFEST_NODES
    stack = [data]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise ManifestError(
                f"{path}: the manifest expands to over {MAX_MANIFEST_NODES} values "
                "(too many YAML aliases?); refusing it"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def load_workflow(path: str, *, check_code: bool = True,
                  cache: ManifestCache | None = None) -> Workflow:
    """Read and validate a manifest; with `check_code`, also check schemas and handlers.

    `check_code=False` (resume, tick) skips importing the module and meta-checking schemas
    until they are needed, which keeps cold commands fast. A workflow whose manifest and module
    files are unchanged (same inode, size and mtime) is served from a cache, so a tick over many
    runs of one workflow reads it once. With `cache`, a manifest whose bytes were parsed before
    (same sha256) is taken from it instead of parsing YAML again (importing yaml alone costs
    a cold command ~25 ms); a miss parses the YAML and stores the document there.
    """
    cached = _workflows.get((path, check_code))
    if cached is not None and cached[0] == _signature(path, cached[1].module_path):
        return cached[1]
    workflow = _load_workflow(path, check_code, cache)
    _workflows[(path, check_code)] = (_signature(path, workflow.module_path), workflow)
    return workflow


def _signature(*paths: str) -> tuple[tuple[int, int, int] | None, ...]:
    result: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            result.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            result.append(None)
    return tuple(result)


def _load_workflow(path: str, check_code: bool, cache: ManifestCache | None) -> Workflow:
    try:
        size = os.path.getsize(path)
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"{path}: the manifest is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit"
            )
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise NotFoundError(f"no workflow manifest at {path}") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    digest = code_hash(raw)
    data = cache.cached_manifest(digest) if cache is not None else None
    parsed = data is None
    if parsed:
        data = _read_yaml(path, raw)
    else:
        _check_size(path, data)  # a cached document gets the same checks as parsed YAML
    workflow, module = parse_manifest(data, path, _default_name(path))
    if parsed and cache is not None:  # after parse_manifest: only a valid manifest is cached
        cache.cache_manifest(digest, data)
    stem = os.path.splitext(os.path.basename(path))[0]
    directory = os.path.dirname(path)
    default_module = "workflow.py" if stem == "workflow" else stem + ".py"
    workflow.module_path = os.path.join(directory, module or default_module)
    workflow.code_hash = {"manifest": digest, "module": file_hash(workflow.module_path)}
    if check_code:
        check_schemas(workflow)
        if workflow.schedule is not None:  # cron, time zone and input (imports croniter)
            from wfrun import _firetimes

            _firetimes.check(workflow)
        check_handlers(workflow)
    return workflow


# (manifest path, manifest hash, module hash) of the versions whose handlers passed: a tick
# checks each due run's workflow, and inspecting every handler's signature each time adds up


def check_schemas(workflow: Workflow) -> None:
    """Raise ManifestError if any schema of the workflow is not valid Draft 2020-12."""
    if workflow.input_schema is not None:
        problem = _schema.schema_problem(workflow.input_schema)
        if problem:
            raise ManifestError(f"{workflow.path}: key 'input_schema': invalid JSON Schema: {problem}")
    for spec in workflow.steps.values():
        for key in SCHEMA_KEYS:
            schema = getattr(spec, key)
            if schema is not None:
                problem = _schema.schema_problem(schema)
                if problem:
                    raise ManifestError(
                        f"{workflow.path}: step '{spec.id}': key '{key}': invalid JSON Schema: "
                        f"{problem}"
                    )


