"""The benchmark package as code like the rest: every name its functions read exists, and
its imports of the project sit at the top of each module, with no edit of sys.path."""

import ast
import builtins
import dis
import importlib
import pkgutil
import types
from pathlib import Path

import benchmarks

PACKAGE = Path(benchmarks.__file__).parent
MODULES = sorted(f"benchmarks.{m.name}" for m in pkgutil.iter_modules(benchmarks.__path__))


def test_every_module_is_walked():
    assert {"benchmarks.cli", "benchmarks.reference", "benchmarks.workers"} <= set(MODULES)


def _global_reads(code):
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_reads(const)


def _functions(module):
    for value in vars(module).values():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            yield value
        elif isinstance(value, type) and value.__module__ == module.__name__:
            yield from (f for f in vars(value).values() if isinstance(f, types.FunctionType))


def test_every_name_the_bench_reads_exists():
    """The bug of ce32ab3: worker functions reading `args` and `p`, main's locals."""
    missing = set()
    for name in MODULES:
        module = importlib.import_module(name)
        missing |= {
            (name, read)
            for fn in _functions(module)
            for read in _global_reads(fn.__code__)
            if not hasattr(module, read) and not hasattr(builtins, read)
        }
    assert not missing


def _project_imports_in_functions(tree: ast.AST) -> list[str]:
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if inner and isinstance(child, ast.ImportFrom):
                if child.level or (child.module or "").split(".")[0] in ("cnn_cifar", "benchmarks"):
                    found.append(f"line {child.lineno}: from {'.' * child.level}{child.module or ''}")
            elif inner and isinstance(child, ast.Import):
                found.extend(
                    f"line {child.lineno}: import {a.name}"
                    for a in child.names
                    if a.name.split(".")[0] in ("cnn_cifar", "benchmarks")
                )
            visit(child, inner)

    visit(tree, False)
    return found


def _sys_path_uses(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]


def test_imports_of_the_project_are_at_the_top_and_sys_path_is_left_alone():
    local, path_edits = {}, {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        if found := _project_imports_in_functions(tree):
            local[path.name] = found
        if lines := _sys_path_uses(tree):
            path_edits[path.name] = lines
    assert not local
    assert not path_edits


def test_the_checks_see_what_they_look_for():
    tree = ast.parse(
        "import sys\ndef f():\n    from cnn_cifar import training\n    sys.path.insert(0, '.')\n"
    )
    assert _project_imports_in_functions(tree) == ["line 3: from cnn_cifar"]
    assert _sys_path_uses(tree) == [4]
