"""The shape of the package: rules a reader relies on, checked on the source itself.

- no import cycle between modules of ``epochal`` (imports inside functions count, ``TYPE_CHECKING``
  blocks do not);
- no module over 600 lines;
- one module puts files in place (``os.replace``): ``epochal.atomic``;
- adapters in ``compat/`` reach the core only through public names.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import epochal

PACKAGE = Path(epochal.__file__).parent
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    return skipped


def _owner(name: str) -> str | None:
    """The module of ``MODULES`` that importing ``name`` runs (a module, or the module defining a name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped = _type_checking_nodes(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            origin = ".".join([*base, node.module] if node.module else base)
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                       for alias in node.names]
        else:
            continue
        found.update(owner for t in targets if t.startswith("epochal") and (owner := _owner(t)) not in (None, module))
    return found


def test_no_import_cycles():
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(cycles)
    # The check sees real edges: the Trainer imports the run, the CLI imports the store.
    assert "epochal.run" in graph["epochal.train.trainer"] and "epochal.store.store" in graph["epochal.cli.common"]


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_only_the_atomic_module_puts_files_in_place():
    users = sorted(
        module for module, path in MODULES.items()
        if any(isinstance(node, ast.Attribute) and node.attr in ("replace", "rename")
               and isinstance(node.value, ast.Name) and node.value.id == "os"
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
    )
    assert users == ["epochal.atomic"]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _core_private_attributes() -> set[str]:
    """Names the core keeps as private attributes of its objects (``self._x = ...``) or defines privately."""
    names = set()
    for module, path in MODULES.items():
        if module.startswith("epochal.compat"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                if _private(node.attr):
                    names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
    return names


def _resolve(dotted: str) -> object:
    """The object an import of ``dotted`` (``epochal.train.csv_tables.CSVTables``) gives."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_compat_reaches_the_core_only_through_public_names():
    core_private = _core_private_attributes()
    problems = []
    for module, path in MODULES.items():
        if not module.startswith("epochal.compat"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")}
        own |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        core_names = {}  # local name -> the core module or object it was imported as
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("epochal") \
                    and not (node.module or "").startswith("epochal.compat"):
                for alias in node.names:
                    if _private(alias.name):
                        problems.append(f"{module} imports {node.module}.{alias.name}")
                    core_names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("epochal") and not alias.name.startswith("epochal.compat"):
                        core_names[(alias.asname or alias.name).split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [_resolve(core_names[b.id]) for b in node.bases if isinstance(b, ast.Name) and b.id in core_names]
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and _private(item.name) and any(
                            hasattr(base, item.name) for base in bases):
                        problems.append(f"{module}.{node.name} overrides the core's private {item.name}")
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                via_core_name = isinstance(root, ast.Name) and root.id in core_names
                core_attribute = node.attr in core_private and node.attr not in own and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                if via_core_name or core_attribute:
                    problems.append(f"{module} line {node.lineno}: {ast.unparse(node)}")
    assert not problems, "compat reaches private names of the core: " + "; ".join(problems)
