"""The edgekit namespace has no import cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "edge": "edgekit", "models": "edgekit.models", "quantize": "edgekit.quantize",
    "calibrate": "edgekit.calibrate", "firmware_bridge": "edgekit.firmware_bridge",
}  # fmt: skip


def module_files() -> dict[str, Path]:
    modules = {}
    for folder, namespace in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [
                p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"
            ]
            modules[".".join([namespace, *parts])] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the edgekit modules it imports anywhere in its body (`from a import b`: a.b if a
    module, else a)."""
    modules = module_files()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgekit"):
                targets |= {owner(f"{node.module}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names if a.name.startswith("edgekit")}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_stages_do_not_import_later_stages() -> None:
    graph = import_graph()
    order = ["edgekit.data", "edgekit.train", "edgekit.calibrate", "edgekit.targets", "edgekit.parity",
             "edgekit.verify", "edgekit.pipeline"]  # fmt: skip
    for position, stage in enumerate(order):
        own = {m for m in graph if m == stage or m.startswith(stage + ".")}
        later = {m for s in order[position + 1 :] for m in graph if m == s or m.startswith(s + ".")}
        wrong = {(m, t) for m in own for t in graph[m] if t in later}
        assert not wrong, f"{stage} imports a later stage: {sorted(wrong)}"
