"""No module of an image imports another in a cycle, lazily inside a function or at the top: a
cycle works only by the order of first imports, and breaks when someone moves a line."""
import ast
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "images"
SERVICES = sorted(p.name for p in IMAGES.iterdir() if p.is_dir() and p.name != "common")


def imports(path, local):
    """The modules of `local` (names) that the file at `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & local


def cycle(graph):
    """One import cycle as a list of module names, or None (depth-first, three colours)."""
    state, stack = {}, []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                return stack[stack.index(other):] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[name] = "done"
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("service", SERVICES)
def test_no_import_cycle_in_the_image(service):
    files = [*(IMAGES / service).glob("*.py"), *(IMAGES / "common").glob("*.py")]
    local = {path.stem for path in files}
    graph = {path.stem: imports(path, local) - {path.stem} for path in files}
    assert cycle(graph) is None, f"images/{service}: " + " -> ".join(cycle(graph))
