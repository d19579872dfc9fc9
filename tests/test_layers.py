"""The import graph of codec/ and cli/ (parsed with ast, nothing imported): no cycles, and every
import goes down the layer list of docs/architecture.md, which names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("codec", "cli")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package is its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports anywhere in its file (also inside functions and
    ``if TYPE_CHECKING``: a lazy import is still a dependency)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return {m for m in out if m in MODULES and m != module}


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _layers() -> list[str]:
    """The layer entries of docs/architecture.md's first code block, top to bottom: a path such as
    ``cli/``, ``codec/train/`` or ``codec/api.py`` at the start of a line."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no layer block"
    return [line.split()[0] for line in block.group(1).splitlines()
            if line and not line[0].isspace()]


def _entry_of(module: str, layers: list[str]) -> int:
    """Index of the layer entry that holds ``module`` (a file entry, else the deepest folder)."""
    path = MODULES[module].relative_to(ROOT).as_posix()
    if path in layers:
        return layers.index(path)
    folders = [i for i, entry in enumerate(layers) if entry.endswith("/") and path.startswith(entry)]
    assert folders, f"{path} is in no layer of docs/architecture.md"
    return max(folders, key=lambda i: len(layers[i]))


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_every_import_goes_down_the_documented_layers() -> None:
    layers = _layers()
    assert len(set(layers)) == len(layers), "a layer is listed twice"
    for entry in layers:
        assert (ROOT / entry).exists(), f"docs/architecture.md names {entry}, which does not exist"
    upward = []
    for module, deps in sorted(GRAPH.items()):
        mine = _entry_of(module, layers)
        for dep in sorted(deps):
            theirs = _entry_of(dep, layers)
            if theirs < mine:
                upward.append(f"{module} ({layers[mine]}) imports {dep} ({layers[theirs]})")
    assert not upward, "imports that go up the layers:\n" + "\n".join(upward)


def test_every_layer_is_used() -> None:
    """No stale entries: each layer holds at least one module."""
    layers = _layers()
    used = {_entry_of(module, layers) for module in MODULES}
    assert used == set(range(len(layers))), [layers[i] for i in set(range(len(layers))) - used]
