"""The layout the architecture promises: no import cycle between harness modules at import time, and files
that fit on a screen or two."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def module_imports() -> dict[str, set[str]]:
    """harness module -> the harness modules it imports at module level (function-local imports run later)."""
    names = {}
    for path in (REPO / "harness").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        names[name] = path
    graph = {}
    for name, path in names.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            targets = [node.module] if isinstance(node, ast.ImportFrom) and node.module else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for t in targets:
                while t and t not in names and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in names and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def test_no_import_cycle_between_harness_modules():
    graph, done, path = module_imports(), set(), []

    def visit(m):
        assert m not in path, "import cycle: " + " -> ".join(path[path.index(m):] + [m])
        if m in done:
            return
        path.append(m)
        for d in graph[m]:
            visit(d)
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)
    assert len(graph) > 30  # the walk saw the package, not an empty folder


def test_no_source_file_over_400_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in sorted(REPO.glob("*/**/*.py"))
            if p.parts[len(REPO.parts)] in ("harness", "algorithms", "tasks") and (n := len(p.read_text().splitlines())) > 400]
    assert not long, long
