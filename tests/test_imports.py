"""deapnas's modules import one another one way: no import circles.

The graph is built from the source with ``ast``, from the ``import`` statements that run when a
module is imported: those of the module's body, including its class bodies and its ``if`` /
``try`` blocks, but not those inside functions. An import inside a function runs when the
function is called, after every module has finished loading, so it cannot see a half-loaded
module; a circle of top-level imports can, and then works or breaks with the order in which
modules happen to be imported first. Imports inside functions are checked as well, by their
own test, so that no circle hides in a function (the root package's shortcut excepted).

A module's package is imported before the module by Python itself; that implicit step is not an
edge (a package's ``__init__`` may import its modules). Taking names from the package is
(``from . import Space`` inside ``deapnas/spaces/darts.py``), since they may not exist yet.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import deapnas
from deapnas.cli import main

from conftest import NB201_METRIC

PACKAGE = Path(deapnas.__file__).parent


def module_files() -> dict[str, Path]:
    """``{dotted module name: source file}`` for every module of deapnas."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("deapnas",) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def import_statements(tree: ast.Module, in_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module: those that run when it is imported, and those inside
    its functions too when ``in_functions``."""
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif in_functions or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(name: str, path: Path, modules: set[str],
                     in_functions: bool = False) -> set[str]:
    """The deapnas modules that module ``name`` imports (at its top level, or anywhere)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in import_statements(ast.parse(path.read_text(), str(path)), in_functions):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        for alias in node.names:  # a module of the package, or a name taken from the package
            submodule = f"{base}.{alias.name}"
            imported.add(submodule if submodule in modules else base)
    return {m for m in imported if m in modules and m != name}


def import_graph(in_functions: bool = False) -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files), in_functions)
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of ``graph`` as a path that ends where it starts; empty when there is none."""
    done, path = set(), []

    def visit(node: str) -> list[str]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return []


def test_the_graph_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "deapnas.data" in graph["deapnas.training"]  # from .data import ...
    assert "deapnas.options" in graph["deapnas.methods.regularized"]  # from ..options import
    assert "deapnas.methods.renas_options" in graph["deapnas.methods"]  # from . import (...)
    assert "deapnas.limits" in graph["deapnas.methods.regularized"]  # from .. import limits


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_module_of_deapnas_imports_itself_in_a_circle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import circle: " + " -> ".join(cycle)


def test_imports_inside_functions_keep_the_same_direction():
    """Imports put inside functions to break a circle hide it instead (``data`` loading weights
    through ``training``, methods reaching back to ``runner``): count them too. Only the root
    package's own imports are left out: ``deapnas.load_model`` is a shortcut to ``export``,
    above everything else."""
    graph = import_graph(in_functions=True)
    graph["deapnas"] = set()
    cycle = find_cycle(graph)
    assert not cycle, "import circle through an import inside a function: " + " -> ".join(cycle)



# -- start-up: the command line imports nothing heavy before a command runs ---------------------

#: Modules that take a second or more to import, and that no ``--help`` needs.
HEAVY = ("torch", "torchvision", "sklearn", "matplotlib", "ray", "cma")


def modules_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n' + ' '.join(sys.modules))"],
        cwd=PACKAGE.parent, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in done.stdout.splitlines()[-1].split()}


@pytest.mark.parametrize("argv", [None, ["--help"], ["search", "--help"]])
def test_the_command_line_and_its_help_import_no_heavy_module(argv):
    """``import deapnas.cli``, and ``deapnas --help`` / ``deapnas search --help`` (every
    method's options listed): before, each imported torch, scikit-learn and every method's
    machinery, seconds of CPU before the first line of help."""
    code = "import deapnas.cli"
    if argv is not None:
        code += ("\nimport contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()), "
                 f"contextlib.suppress(SystemExit):\n    deapnas.cli.main({argv!r})")
    loaded = modules_after(code)
    assert "deapnas" in loaded and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_method_registry_lists_every_method_without_its_machinery():
    """Each built-in method's options and presets come from its light declaration; its loop
    (and torch) are imported when a hook is first called."""
    code = ("from deapnas.methods import METHODS\n"
            "assert len(METHODS) == 6 and all(m.options() and m.presets for m in METHODS.values())")
    loaded = modules_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


#: What ``deapnas show`` must not import: it reads files and draws them (with matplotlib).
NOT_FOR_SHOW = set(HEAVY) - {"matplotlib"}


def test_showing_a_finished_table_search_imports_no_torch(nb201_csv, tmp_path):
    """``deapnas show`` on a finished NAS-Bench-201 table search reads its files, writes a
    summary and draws the fitness and the pick's cell: before, it imported torch (through the
    runner, the journal, every space and the graph compiler), most of its CPU seconds."""
    out = tmp_path / "run"
    assert main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
                 "--metric", NB201_METRIC, "--evaluations", "8", "--population", "4",
                 "--sample-size", "2", "--out", str(out), "--quiet"]) == 0
    code = ("import contextlib, io, deapnas.cli\nwith contextlib.redirect_stdout(io.StringIO()):"
            f"\n    assert deapnas.cli.main(['show', {str(out)!r}]) == 0")
    loaded = modules_after(code)
    assert (out / "fitness.png").exists() and (out / "best.png").exists()
    assert "deapnas" in loaded and not loaded & NOT_FOR_SHOW, sorted(loaded & NOT_FOR_SHOW)
