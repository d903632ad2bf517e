"""trainer/ modules import each other without a cycle, counting imports inside functions too: a cycle is a
module that cannot be read on its own (config -> presets -> model -> config was one)."""
import ast
import os

TRAINER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "trainer")


def import_graph(folder: str, package: str) -> dict[str, set[str]]:
    """{module: modules of `package` it imports anywhere in its body}."""
    modules = {name[:-3] for name in os.listdir(folder) if name.endswith(".py")}
    graph = {}
    for name in modules:
        with open(os.path.join(folder, f"{name}.py"), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"{package}."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == package:
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith(f"{package}."))
        graph[name] = found - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when the graph has none (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "config.py").write_text("def load():\n    from pkg.presets import PRESETS\n")
    (tmp_path / "presets.py").write_text("from pkg.model import Decoder\n")
    (tmp_path / "model.py").write_text("from pkg import config\n")
    assert find_cycle(import_graph(str(tmp_path), "pkg")) == ["config", "presets", "model", "config"]
    (tmp_path / "model.py").write_text("import os\n")
    assert find_cycle(import_graph(str(tmp_path), "pkg")) == []


def test_trainer_has_no_import_cycle():
    graph = import_graph(TRAINER, "trainer")
    assert {"config", "presets", "sizing", "model", "token_shards"} <= set(graph)
    assert find_cycle(graph) == []
    assert "presets" not in graph["config"] and "model" not in graph["presets"]
