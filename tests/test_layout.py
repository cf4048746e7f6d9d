"""The house keeps its data flow: data -> cases -> training -> running -> scoring -> reporting.

Imports are read with ``ast`` (every import, also those inside functions), so
a module that reaches back up the pipeline, an import circle, or a detector
that reaches into the harness beyond the trace/facts contract fails here.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("data", "cases", "training", "running", "scoring", "reporting")
# The contract every stage and every detector may read: no stage of its own.
# harness.baseline and harness.outputs are part of the facts: the learned reference and the measured outputs.
CONTRACT = {"harness.trace", "harness.facts", "harness.baseline", "harness.outputs", "harness.errors",
            "harness.provenance", "harness"}
ENTRY = {"harness.__main__"}  # with harness.cli.*: the command line sees every stage
# The doors a live callback has into training: the probe, and what only a live fit needs (never a worker's).
LIVE_ENTRY = {"harness.training.probe", "harness.training.live_probe"}


def modules(package: str) -> dict[str, str]:
    found = {}
    for folder, dirs, names in os.walk(os.path.join(ROOT, package)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = os.path.join(folder, name)
    return found


def imports(path: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


ALL = {**modules("harness"), **modules("detectors"), **modules("bugbench")}
GRAPH = {m: {i for i in imports(p) if i in ALL and i != m} for m, p in ALL.items()}


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) >= 2 and parts[0] == "harness" and parts[1] in STAGES else None


def test_every_harness_module_sits_in_a_stage_folder_or_is_the_contract():
    loose = [m for m in ALL if m.startswith("harness") and stage(m) is None and m not in CONTRACT | ENTRY
             and not m.startswith("harness.cli")]
    assert not loose


@pytest.mark.parametrize("module", sorted(m for m in ALL if stage(m) is not None))
def test_a_stage_imports_only_itself_earlier_stages_and_the_contract(module):
    back = [i for i in GRAPH[module] if i.startswith("harness") and i not in CONTRACT
            and (stage(i) is None or stage(i) > stage(module))]
    assert not back, f"{module} reaches down the pipeline: {back}"
    if stage(module) <= STAGES.index("training"):
        assert not [i for i in GRAPH[module] if i.startswith("detectors")], "training must not know the detectors"


def test_the_contract_imports_no_stage():
    for module in CONTRACT - {"harness"}:
        assert not [i for i in GRAPH[module] if stage(i) is not None or i.startswith("detectors")], module


@pytest.mark.parametrize("module", sorted(m for m in ALL if m.startswith("detectors")))
def test_detectors_read_only_the_contract(module):
    allowed = CONTRACT | (LIVE_ENTRY if module == "detectors.live" else set())
    reach = [i for i in GRAPH[module] if i.startswith("harness") and i not in allowed]
    assert not reach, f"{module} reaches into the harness: {reach}"


def test_live_only_modules_are_never_imported_by_a_training_worker():
    """harness.provenance leaves them out of the unit key: nothing a worker runs may import them."""
    from harness.provenance import LIVE_ONLY

    live = {p[:-3].replace("/", ".") for p in LIVE_ONLY}
    seen, todo = set(), ["harness.training.train", "harness.running.engine"]
    while todo:
        module = todo.pop()
        if module in seen or module not in GRAPH:
            continue
        seen.add(module)
        todo.extend(GRAPH[module])
    assert not seen & live


def test_no_import_circles():
    def package_of(name):  # `from harness.scoring import fidelity` names a module, not the package
        return name if name in ALL else None

    edges = {m: {package_of(i) for i in deps} - {None} for m, deps in GRAPH.items()}
    edges = {m: {d for d in deps if not m.startswith(d + ".") and d not in ("harness", "detectors")}
             for m, deps in edges.items()}
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles
