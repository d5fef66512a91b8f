"""The package's layering, checked on the installed sources.

Every module of ``msk`` is parsed (module-level and function-level imports
alike, relative imports resolved) into an import graph. The graph must have
no cycle, and no module may import a private (leading-underscore) name of
another module, neither by ``from .other import _name`` nor by
``other._name``. Private *modules* (``msk._validation``, ``msk._nca``,
``msk._core._spectral``, ...) exist to be imported by their users; the names
inside them that other modules use are public names of a private module.
A compiled kernel module of ``msk._core`` is imported by exactly one wrapper
module.
"""

import ast
import functools
import os
import subprocess
import sys

import pytest

import msk

PACKAGE = "msk"



def _sources():
    """``{module name: path}`` of every Python source of the installed package."""
    root = os.path.dirname(msk.__file__)
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, root)
        parts = [PACKAGE] + ([] if rel == "." else rel.split(os.sep))
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            name = ".".join(parts if f == "__init__.py" else parts + [f[:-3]])
            out[name] = os.path.join(dirpath, f)
    return out


def _compiled_modules():
    """Names of the compiled extension modules in ``msk._core``."""
    import importlib.machinery

    core = os.path.join(os.path.dirname(msk.__file__), "_core")
    names = set()
    if os.path.isdir(core):
        for f in os.listdir(core):
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if f.endswith(suffix):
                    names.add(f"{PACKAGE}._core.{f[:-len(suffix)]}")
    import msk._core as core_pkg  # an editable install keeps them elsewhere

    for attr in dir(core_pkg):
        if attr.startswith("_") and not attr.startswith("__"):
            names.add(f"{PACKAGE}._core.{attr}")
    return names


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Scanner(ast.NodeVisitor):
    """Collect one module's imports (edges), private names it imports, and private attributes it reads."""

    def __init__(self, module, is_package, modules):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.edges = {}  # imported module -> first line
        self.aliases = {}  # local name -> module it is bound to
        self.violations = []  # (imported module.name, line)

    def _resolve(self, level, target):
        if level == 0:
            return target
        base = self.package.split(".")
        if level > 1:
            base = base[:-(level - 1)]
        return ".".join(base + ([target] if target else []))

    def _edge(self, target, line):
        if target.split(".")[0] == PACKAGE and target != self.module:
            self.edges.setdefault(target, line)

    def visit_Import(self, node):
        for a in node.names:
            if a.name.split(".")[0] != PACKAGE:
                continue
            self._edge(a.name, node.lineno)
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                self.aliases[PACKAGE] = PACKAGE

    def visit_ImportFrom(self, node):
        source = self._resolve(node.level, node.module)
        if source is None or source.split(".")[0] != PACKAGE:
            return
        for a in node.names:
            sub = f"{source}.{a.name}"
            if sub in self.modules:  # a module: importing it is fine, even a private one
                self._edge(sub, node.lineno)
                self.aliases[a.asname or a.name] = sub
                continue
            self._edge(source, node.lineno)
            if _is_private(a.name) and source != self.module:
                self.violations.append((f"{source}.{a.name}", node.lineno))

    def visit_Attribute(self, node):
        chain = []
        value = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.aliases:
            target = self.aliases[value.id]
            for attr in reversed(chain):
                nested = f"{target}.{attr}"
                if nested in self.modules:
                    target = nested
                    continue
                if _is_private(attr) and target != self.module:
                    self.violations.append((f"{target}.{attr}", node.lineno))
                break
            return  # the chain is handled; do not visit its inner attributes again
        self.generic_visit(node)


@functools.lru_cache(maxsize=1)
def _scan():
    sources = _sources()
    modules = set(sources) | _compiled_modules()
    graph, violations = {}, {}
    for name, path in sources.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        scanner = _Scanner(name, path.endswith("__init__.py"), modules)
        scanner.visit(tree)
        graph[name] = scanner.edges
        for target, line in scanner.violations:
            violations.setdefault((name, target), line)
    return graph, violations, modules


def _cycles(graph):
    """Every cycle's modules (strongly connected components of more than one module, or a self-loop)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def test_scanner_sees_relative_function_level_and_attribute_imports():
    # the checker itself, on a made-up module: it must see what it is meant to reject
    code = (
        "from . import _nca, heads\n"
        "from .heads import _draw_seed\n"
        "def f():\n"
        "    from .store import FeatureStore\n"
        "    import msk.metrics\n"
        "    return heads._check_tags, msk.metrics.per_tag_auc, _nca.block_rows\n"
    )
    modules = {"msk", "msk.heads", "msk._nca", "msk.store", "msk.metrics", "msk.fake"}
    scanner = _Scanner("msk.fake", False, modules)
    scanner.visit(ast.parse(code))
    assert set(scanner.edges) == {"msk._nca", "msk.heads", "msk.store", "msk.metrics"}
    assert sorted(v for v, _ in scanner.violations) == ["msk.heads._check_tags", "msk.heads._draw_seed"]
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycle():
    graph, _, _ = _scan()
    assert len(graph) > 10, f"found only {sorted(graph)}: the scan missed the package"
    cycles = _cycles(graph)
    details = []
    for cycle in cycles:
        members = set(cycle)
        details.append(", ".join(f"{a} -> {b} (line {graph[a][b]})"
                                 for a in cycle for b in graph[a] if b in members))
    assert not cycles, "import cycles:\n" + "\n".join(details)


def test_no_private_name_crosses_modules():
    _, violations, _ = _scan()
    found = dict(violations)
    listed = "\n".join(f"{m}, line {line}: {t}" for (m, t), line in sorted(found.items()))
    assert not found, "private names imported from another module:\n" + listed


def test_each_kernel_module_has_one_wrapper():
    graph, _, modules = _scan()
    kernels = sorted(m for m in modules if m.startswith(f"{PACKAGE}._core.") and m.count(".") == 2)
    assert kernels, "no compiled kernel module found"
    for kernel in kernels:
        users = sorted(m for m, edges in graph.items() if kernel in edges and not m.startswith(f"{PACKAGE}._core"))
        assert len(users) <= 1, f"{kernel} is imported by {users}; one wrapper module owns each kernel"


HEAVY = ("sklearn.neural_network", "sklearn.decomposition", "scipy.stats", "scipy.sparse", "matplotlib")
#: What msk's top level needs: importing these alone is the baseline that
#: ``import msk`` is compared with.
CORE_DEPENDENCIES = ("numpy", "scipy.linalg", "sklearn.base", "sklearn.utils.validation", "threadpoolctl")


def _loaded_after(statement):
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_msk_leaves_heavy_modules_unloaded():
    # fresh interpreters: the test process has imported everything already
    loaded = _loaded_after("import msk")
    baseline = _loaded_after("import " + ", ".join(CORE_DEPENDENCIES))
    # a heavy module that a core dependency imports by itself (some scikit-learn
    # releases import scipy.stats and scipy.sparse from sklearn.base) is not msk's doing
    pulled = sorted(m for m in HEAVY if m in loaded and m not in baseline)
    assert not pulled, f"`import msk` imports {pulled}; import them where they are used"
    lazy = sorted(m for m in ("msk.heads", "msk.experiment", "msk.metrics", "msk.plot", "msk.store",
                              "msk.datasets", "msk.baselines") if m in loaded)
    assert not lazy, f"`import msk` imports {lazy}; they load on first use"


def test_lazy_submodules_are_complete_attributes():
    code = (
        "import msk\n"
        "names = dir(msk)\n"
        "assert all(n in names for n in msk.__all__), sorted(set(msk.__all__) - set(names))\n"
        "from msk import heads\n"
        "import msk.experiment\n"
        "assert msk.heads is heads and msk.experiment.run_experiment and msk.metrics.per_tag_auc\n"
        "try:\n"
        "    msk.no_such_name\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
