"""The package's layout as docs/architecture.md draws it, checked from the source: which
package may import which, no import cycles, no function-local imports of the project's own
modules, one vocabulary of statuses, and a CLI that starts without the heavy libraries."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "cnn_cifar"
ARCHITECTURE_DOC = REPO / "docs" / "architecture.md"


def layer_table() -> dict[str, tuple[int, set[str]]]:
    """docs/architecture.md's table of packages, the one place the layout is written:
    package -> (its layer, the packages it may import). The last column names them
    (`core`, `config`), or says "nothing of the project", "every package below" or
    "every package below but `x`", below meaning on a lower layer."""
    rows = {}
    for line in ARCHITECTURE_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit() and cells[1].startswith("`"):
            rows[cells[1].strip("`/")] = (int(cells[0]), cells[3])
    table = {}
    for package, (layer, allowed) in rows.items():
        named = set(re.findall(r"`(\w+)`", allowed))
        if allowed.startswith("every package below"):
            below = {p for p, (other, _) in rows.items() if other < layer}
            table[package] = (layer, below - named if " but " in allowed else below)
        else:
            table[package] = (layer, named)
    return table


LAYERS = layer_table()
# What each package may import (besides itself): docs/architecture.md's table.
ALLOWED = {package: allowed for package, (_, allowed) in LAYERS.items()}
STATUS_WORDS = {
    "running",
    "finished",
    "failed",
    "interrupted",
    "stale",
    "unreadable",
    "ok",
    "pruned",
    "completed",
    "dropped",
    "invalid",
}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


KNOWN = modules()


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""  # "" is cnn_cifar/__init__.py


def imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported cnn_cifar module, inside a function?) for every import of the project."""
    tree = ast.parse(path.read_text())
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                head = base[: len(base) - child.level + 1] if child.level else []
                target = ".".join([*head, *([child.module] if child.module else [])])
                if target.split(".")[0] == "cnn_cifar":
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.append((sub if sub in KNOWN else target, inner))
            elif isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names if a.name.split(".")[0] == "cnn_cifar")
            visit(child, inner)

    visit(tree, False)
    return found


def test_every_package_is_in_the_map():
    packages = {package_of(m) for m in KNOWN} - {""}
    assert packages == set(ALLOWED)


def test_packages_import_only_the_packages_below_them():
    wrong = [
        f"{module} imports {target}"
        for module, path in KNOWN.items()
        for target, _ in imports(module, path)
        if package_of(module)
        and package_of(target)  # cnn_cifar itself: its __version__ and public names
        and package_of(target) != package_of(module)
        and package_of(target) not in ALLOWED[package_of(module)]
    ]
    assert wrong == []


def depth(package: str) -> int:
    return 1 + max((depth(p) for p in ALLOWED[package]), default=0)


def test_the_package_graph_has_at_most_seven_layers():
    assert max(depth(p) for p in ALLOWED) <= 7


def test_each_package_sits_on_the_layer_the_doc_gives_it():
    """The table's layer column is what its import column implies: one above the highest
    package it may import, so nothing it may import sits on its layer or above."""
    assert {p: layer for p, (layer, _) in LAYERS.items()} == {p: depth(p) for p in ALLOWED}


def test_no_module_imports_itself_round_a_cycle():
    graph = {m: {t for t, _ in imports(m, p) if t in KNOWN and t != m} for m, p in KNOWN.items()}
    done, active = set(), []

    def walk(m):
        if m in active:
            pytest.fail("import cycle: " + " -> ".join([*active[active.index(m) :], m]))
        if m in done:
            return
        active.append(m)
        for t in graph[m]:
            walk(t)
        active.pop()
        done.add(m)

    for m in graph:
        walk(m)


def test_the_project_is_imported_at_the_top_of_each_file():
    local = [
        f"{module} imports {target} inside a function"
        for module, path in KNOWN.items()
        for target, inner in imports(module, path)
        if inner
    ]
    assert local == []


def test_statuses_are_spelled_once_in_the_vocabulary():
    """No status word as a string compared, assigned to `status` or keyed by it outside
    core/vocabulary.py: statuses are the vocabulary's enums."""
    found = []
    for module, path in KNOWN.items():
        if module == "cnn_cifar.core.vocabulary":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            candidates = []
            if isinstance(node, ast.Compare):
                candidates = [node.left, *node.comparators]
                candidates += [
                    e for c in node.comparators if isinstance(c, (ast.Tuple, ast.Set)) for e in c.elts
                ]
            elif isinstance(node, ast.keyword) and node.arg == "status":
                candidates = [node.value]
            elif isinstance(node, ast.Dict):
                candidates = [
                    v for k, v in zip(node.keys, node.values, strict=True) if isinstance(k, ast.Constant)
                ]
                candidates += [k for k in node.keys if k is not None]
            found += [
                f"{module}:{c.lineno} {c.value!r}"
                for c in candidates
                if isinstance(c, ast.Constant) and c.value in STATUS_WORDS
            ]
    assert found == []


def test_every_user_error_has_one_base():
    from cnn_cifar.commands.fold_scores import CompareError
    from cnn_cifar.commands.predict import PredictError
    from cnn_cifar.config.errors import ConfigError
    from cnn_cifar.core.vocabulary import UserError
    from cnn_cifar.data.formats import DataError
    from cnn_cifar.search.errors import SearchError
    from cnn_cifar.tracking import TrackingError
    from cnn_cifar.training.model_file import ModelFileError

    errors = (CompareError, ConfigError, DataError, ModelFileError, PredictError, SearchError, TrackingError)
    assert all(issubclass(e, UserError) for e in errors)


def test_the_cli_starts_without_keras_sklearn_or_matplotlib():
    code = (
        "import sys; from cnn_cifar.cli import main; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'sklearn', 'matplotlib', 'scipy', 'mlflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_names_keep_working():
    import cnn_cifar
    from cnn_cifar import CNNClassifier, from_config, load_config

    assert CNNClassifier.__module__ == "cnn_cifar.training.estimator"
    assert callable(from_config) and callable(load_config)
    with pytest.raises(AttributeError):
        cnn_cifar.no_such_name  # noqa: B018
