"""The house rules, checked on the source: which package may import which (docs/architecture.md), the rooms
inside assay/pipelines/, and no import cycle inside a package. Every import counts, also those inside functions."""
import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "assay"  # every package lives under the one import name
PACKAGES = ("groundwork", "kernels", "curation", "classifiers", "synth", "trainer", "pipelines")
#: what each top-level package may import from assay besides itself (the floors)
MAY_IMPORT = {
    "groundwork": set(),
    "kernels": {"groundwork"},
    "curation": {"groundwork"},
    "classifiers": {"groundwork", "curation"},
    "synth": {"groundwork", "curation"},
    "trainer": {"groundwork", "kernels"},
    "pipelines": {"groundwork", "kernels", "curation", "classifiers", "synth", "trainer"},
}
#: rooms of assay/pipelines/ and the other rooms each may import (the job layer is shared by every job)
PIPELINE_ROOMS = {
    "job": set(),
    "mix": {"job"},
    "ablate": {"job", "mix"},
    "curate": {"job"},
    "synth_jobs": {"job"},
    "score_shards": {"job"},
    "quality": {"job", "curate"},
    "cli": {"job", "mix", "ablate", "curate", "synth_jobs", "score_shards", "quality"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the assay modules it imports (absolute names; `from a import b` counts a and a.b)."""
    found: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_name(path)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                names = [n.removeprefix("assay.") for n in names]
                found[module].update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


IMPORTS = _imports()


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pipelines"


def test_every_package_imports_only_the_floors_below_it():
    wrong = sorted((module, target) for module, targets in IMPORTS.items() for target in targets
                   if target.split(".")[0] != module.split(".")[0]
                   and target.split(".")[0] not in MAY_IMPORT[module.split(".")[0]])
    assert not wrong, "imports across floors (see docs/architecture.md): " + ", ".join(f"{m} -> {t}" for m, t in wrong)


def test_rooms_of_pipelines_import_only_the_rooms_they_stand_on():
    wrong = []
    for module, targets in IMPORTS.items():
        if not module.startswith("pipelines.") or _room(module) not in PIPELINE_ROOMS:
            continue
        room = _room(module)
        for target in targets:
            if target.startswith("pipelines.") and _room(target) not in (room, *PIPELINE_ROOMS[room]):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports between rooms of assay/pipelines/: " + ", ".join(sorted(wrong))
    rooms = {p.stem if p.is_file() else p.name for p in (ROOT / "pipelines").iterdir()
             if p.name != "__init__.py" and not p.name.startswith((".", "__")) and (p.suffix == ".py" or p.is_dir())}
    assert rooms == set(PIPELINE_ROOMS), "a new room of assay/pipelines/: say what it stands on in PIPELINE_ROOMS"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    modules = {m for m in IMPORTS if m.split(".")[0] == package} | {
        _module_name(p) for p in (ROOT / package).rglob("*.py")}
    graph = {m: {t for t in IMPORTS.get(m, ()) if t in modules and t != m and not m.startswith(t + ".")}
             for m in modules}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail(f"import cycle in {package}/: {' -> '.join(cycle)}")
