"""The cold-resume target's reference (SPEC §9: "a process that merely imports wfrun's
dependencies") is read from pyproject by bench/run.py: every runtime dependency, each under the
module name it is imported as."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_names_each_dependency_by_its_module(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = [\n'
                         '  "typer>=0.12", "PyYAML>=6.0", "filelock ~= 3.13",\n'
                         '  "rich[jupyter]>=13", "tzdata; sys_platform == \'win32\'",\n'
                         '  "typing-extensions",\n]\n')
    statement = bench().dependency_imports(pyproject)
    assert statement == "import typer, yaml, filelock, rich, tzdata, typing_extensions"


def test_the_reference_imports_every_runtime_dependency_of_wfrun() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    statement = bench().dependency_imports()
    assert statement.startswith("import ") and statement.count(",") == len(declared) - 1
    # a dependency whose module is not its name (add it to bench/run.py's MODULE_OF) fails here
    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
