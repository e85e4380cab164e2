"""No module of an image, or of the tools (the harness, ci/'s Python, the lab's package, the tests'
helpers), imports another in a cycle, lazily inside a function or at the top: a cycle works only
by the order of first imports, and breaks when someone moves a line. And the one list of the
app's services that the tests and the benchmark share is the image folders."""
import ast
from pathlib import Path

import pytest

import localapp

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
SERVICES = sorted(p.name for p in IMAGES.iterdir() if p.is_dir() and p.name != "common")
# The tools' modules as they import each other: flat folders on the path (pytest.ini, bench.sh)
# by file name, packages by dotted name.
TOOL_FOLDERS = ("harness", "ci")
TOOL_PACKAGES = (("lab", "dockercoins_lab"), ("tests", "helpers"))


def imports(path, local):
    """The modules of `local` (dotted names) that the file at `path` imports, anywhere in it:
    `import a.b` names a.b (and a), `from a import b` names a and a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
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


def test_no_import_cycle_in_the_tools():
    modules = {path.stem: path for folder in TOOL_FOLDERS for path in (ROOT / folder).glob("*.py")}
    for parent, package in TOOL_PACKAGES:
        for path in (ROOT / parent / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    assert {"localapp", "bench", "dockercoins_lab.cli", "helpers.kube"} <= set(modules)
    graph = {name: imports(path, set(modules)) - {name, name.split(".")[0]}
             for name, path in modules.items()}
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_service_list_is_the_image_folders():
    """The harness's one list of the app's services (localapp.SERVICES) is images/'s folders."""
    assert sorted(localapp.SERVICES) == SERVICES
    assert all((IMAGES / service / "Dockerfile").is_file() for service in SERVICES)
