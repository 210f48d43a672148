"""Import direction: fspkit -> robnet -> torch.

robnet (every module, subpackages included) never imports fspkit; robnet.genotype imports no
torch; fspkit's core (fsp, capture, score, proxies) imports only torch; fspkit.stats imports no torch
(numpy, scipy, scikit-learn); only fspkit/plots.py imports matplotlib or seaborn.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in the file (lazy imports inside functions too)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_walks_every_module():
    names = {p.relative_to(ROOT).as_posix() for p in _modules("robnet") + _modules("fspkit")}
    # the modules the import rules below are about must exist (a rename would silently skip them)
    assert {"robnet/search.py", "robnet/supernet.py", "robnet/genotype.py", "fspkit/stats.py",
            "fspkit/plots.py", "fspkit/score.py"} <= names


@pytest.mark.parametrize("path", _modules("robnet"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_robnet_never_imports_fspkit(path):
    assert "fspkit" not in _imports(path)


def test_search_and_supernet_never_import_fspkit_at_runtime():
    code = ("import sys, robnet.search, robnet.supernet, robnet.search_cli, robnet.search_run, robnet.candidate\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fspkit'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["fsp.py", "capture.py", "score.py", "proxies.py"])
def test_fspkit_core_imports_only_torch(name):
    path = ROOT / "fspkit" / name
    third_party = _imports(path) - set(sys.stdlib_module_names) - {"torch", "__future__"}
    assert third_party <= {"fspkit"}, (name, third_party)


@pytest.mark.parametrize("name", ["stats.py", "_stats_core.py"])
def test_fspkit_statistics_import_no_torch(name):
    path = ROOT / "fspkit" / name
    if not path.exists():
        pytest.skip(f"fspkit/{name} is not part of this tree")
    assert not ({"torch", "robnet"} & _imports(path)), name


def test_fspkit_stats_imports_no_torch_at_runtime():
    # fspkit/__init__ imports torch (score, capture); load the package empty to see stats' own imports
    code = (
        "import importlib.util, sys, types\n"
        f"pkg = types.ModuleType('fspkit'); pkg.__path__ = [r'{ROOT / 'fspkit'}']; sys.modules['fspkit'] = pkg\n"
        "import fspkit.stats\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_genotype_imports_no_torch_at_runtime():
    # import the module file directly so robnet/__init__ (which imports torch) is not executed
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('genotype', r'{ROOT / 'robnet' / 'genotype.py'}')\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['genotype'] = m; spec.loader.exec_module(m)\n"
        "m.sample(0, cell_free=True)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert _imports(ROOT / "robnet" / "genotype.py") <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("path", _modules("robnet") + _modules("fspkit"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_plots_is_the_only_matplotlib_user(path):
    if path.name != "plots.py":
        assert not ({"matplotlib", "seaborn"} & _imports(path)), path.name
