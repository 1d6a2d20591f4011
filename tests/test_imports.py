"""The package's import graph, read from the source of every ktsketch/*.py (imports inside functions included):
no cycles, no library module importing the command line, and each module's siblings imported at its top."""
from __future__ import annotations
import ast
from pathlib import Path
import pytest
from conftest import ROOT

PKG = ROOT / "ktsketch"
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in ("__init__", "_modidx"))

# Sibling imports made inside a function on purpose (or not yet moved), each with its reason.
INSIDE_FUNCTIONS = {
    ("data", "synthetic"): "01_data: load_dataset('synthetic') imports it only when asked, and tests that its absence is a one-line error",
    ("evaluation", "students"): "06_evaluation (another helper's this round): in_channels / model_cost, to move to the top",
}

def _sibling(node: ast.AST, names_in_pkg: set) -> list[str]:
    "The ktsketch modules an import node (or an importlib.import_module('ktsketch.x') call) brings in."
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("ktsketch.")]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0 and (node.module or "").startswith("ktsketch."): return [node.module.split(".")[1]]
        if node.level == 0 and node.module == "ktsketch" or node.level == 1 and node.module is None:
            return [a.name for a in node.names if a.name in names_in_pkg]   # from . import data
        if node.level == 1: return [node.module.split(".")[0]]
        return []
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("ktsketch.")):
        return [node.args[0].value.split(".")[1]]
    return []

def module_imports(path: Path) -> list[tuple[str, bool]]:
    "(sibling module, imported at the module's top level?) for every import in the file at `path`."
    out = []
    def visit(node, top):
        for m in _sibling(node, set(MODULES)): out.append((m, top))
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        for child in ast.iter_child_nodes(node): visit(child, inner)
    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return out

def import_graph() -> dict[str, set]:
    return {m: {t for t, _ in module_imports(PKG / f"{m}.py") if t != m} for m in MODULES}

def find_cycle(graph: dict) -> list | None:
    "A cycle of `graph` (module -> imported modules) as [a, b, ..., a], or None."
    state, stack = {}, []
    def dfs(m):
        state[m] = "open"; stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open": return stack[stack.index(t):] + [t]
            if t not in state and (found := dfs(t)): return found
        state[m] = "done"; stack.pop()
        return None
    for m in sorted(graph):
        if m not in state and (found := dfs(m)): return found
    return None

def test_the_reader_sees_every_kind_of_import(tmp_path):
    "The parser finds top-level, in-function, package-relative, absolute and importlib imports (else the tests below prove nothing)."
    f = tmp_path / "m.py"
    f.write_text("from .core import x\nimport ktsketch.data\nfrom . import runs, __version__\n"
                 "def f():\n    from ktsketch.transfer import y\n    importlib.import_module('ktsketch.synthetic')\n"
                 "class C:\n    def g(self): from .cli import main\n")
    assert module_imports(f) == [("core", True), ("data", True), ("runs", True), ("transfer", False),
                                 ("synthetic", False), ("cli", False)]
    graph = import_graph()
    assert {"transfer", "evaluation", "data", "teachers"} <= graph["runs"] and "runs" in graph["cli"]

def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None

def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)

@pytest.mark.parametrize("module", [m for m in MODULES if m != "cli"])
def test_no_library_module_imports_the_command_line(module):
    assert "cli" not in {t for t, _ in module_imports(PKG / f"{module}.py")}, \
        f"ktsketch.{module} imports ktsketch.cli: move what it needs into a library module (e.g. runs)"

@pytest.mark.parametrize("module", MODULES)
def test_siblings_are_imported_at_the_top(module):
    hidden = sorted({t for t, top in module_imports(PKG / f"{module}.py") if not top and t != module
                     and (module, t) not in INSIDE_FUNCTIONS})
    assert not hidden, f"ktsketch.{module} imports {hidden} inside functions: import them at the top of the module"
