"""The import rules of the two packages (CONTRIBUTING.md, "Layout").

* fspkit -> robnet -> torch: robnet never imports fspkit (also not at run time, for the search).
* ``robnet.models.genotype`` imports no torch: the search space is sampled without it.
* fspkit's core (fsp, cells, capture, score, proxies) imports no third-party package but torch (and robnet).
* ``fspkit.stats`` imports no torch (numpy, scipy, scikit-learn, and robnet's torch-free modules: the
  genotype and the records schema); importing it loads no torch.
* Only ``fspkit.plots`` imports matplotlib or seaborn.
* No import cycle between the project's modules (imports inside functions count; ``TYPE_CHECKING``
  blocks do not).
* No private cross-package import: a module or name starting with ``_`` is used only inside its own
  package (so fspkit never imports ``robnet._anything``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._paths import ROOT

PACKAGES = ("robnet", "fspkit")


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in _files(pkg)}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _package_of(name: str) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    return name if _is_package(name) else name.rsplit(".", 1)[0]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import, relative ones resolved;
    imports under ``if TYPE_CHECKING:`` are left out."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    me = _module_name(path)
    base = me if path.name == "__init__.py" else me.rsplit(".", 1)[0] if "." in me else ""
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - node.level + 1]
                module = ".".join([*anchor, module] if module else anchor)
            for alias in node.names:
                yield module, alias.name, node.lineno


def _top_levels(path: Path) -> set[str]:
    return {module.split(".")[0] for module, _, _ in _imports(path)}


def _targets(module: str, name: str | None) -> list[str]:
    """The project modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if name is not None and f"{module}.{name}" in MODULES:
        return [f"{module}.{name}"]
    return [module] if module in MODULES else []


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, imported, _ in _imports(path):
            graph[name].update(t for t in _targets(module, imported) if t != name)
    return graph


def test_walks_every_module():
    # the modules the rules below are about must exist (a rename would silently skip them)
    assert {"robnet.models.genotype", "robnet.search.stages", "robnet.models.supernet", "fspkit.stats",
            "fspkit.plots", "fspkit.score", "fspkit.capture", "fspkit.cells"} <= set(MODULES)


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("robnet")])
def test_robnet_never_imports_fspkit(name):
    assert "fspkit" not in _top_levels(MODULES[name])


def test_search_never_imports_fspkit_at_runtime():
    code = ("import sys, robnet.search, robnet.models.supernet, robnet.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fspkit'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["fspkit.fsp", "fspkit.cells", "fspkit.capture", "fspkit.score", "fspkit.proxies"])
def test_fspkit_core_imports_only_torch(name):
    third_party = _top_levels(MODULES[name]) - set(sys.stdlib_module_names) - {"torch", "__future__"}
    assert third_party <= {"fspkit", "robnet"}, (name, third_party)


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("fspkit.stats")])
def test_fspkit_statistics_import_no_torch(name):
    assert not ({"torch", "matplotlib", "seaborn"} & _top_levels(MODULES[name])), name


def test_fspkit_stats_imports_no_torch_at_runtime():
    # the package faces load lazily, so this imports exactly what fspkit.stats needs
    code = "import sys, fspkit.stats\nfspkit.stats.correlate\nfspkit.stats.analyze\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_genotype_imports_no_torch_at_runtime():
    # load the module file directly so the packages above it (which import torch) are not executed
    path = MODULES["robnet.models.genotype"]
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('genotype', r'{path}')\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['genotype'] = m; spec.loader.exec_module(m)\n"
        "m.sample(0, cell_free=True)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert _top_levels(path) <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("name", list(MODULES))
def test_only_fspkit_plots_imports_matplotlib(name):
    if not name.startswith("fspkit.plots"):
        assert not ({"matplotlib", "seaborn", "cycler"} & _top_levels(MODULES[name])), name


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _private_imports() -> list[str]:
    bad = []
    for name, path in MODULES.items():
        mine = _package_of(name)
        for module, imported, line in _imports(path):
            if module.split(".")[0] not in PACKAGES:
                continue
            parts = module.split(".")
            private_part = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
            if private_part is not None:
                owner = ".".join(parts[:private_part])  # the package that holds the private module
                if mine != owner and not mine.startswith(owner + "."):
                    bad.append(f"{name}:{line} imports private module {module} of package {owner}")
            elif imported is not None and imported.startswith("_") and not imported.startswith("__"):
                owner = module if module in MODULES and _is_package(module) else module.rsplit(".", 1)[0]
                if mine != owner:
                    bad.append(f"{name}:{line} imports private name {imported} from {module}")
    return sorted(set(bad))


def test_no_private_cross_package_import():
    assert _private_imports() == []
