"""Import direction: fspkit -> robnet -> torch; robnet never imports fspkit; robnet.genotype imports no torch."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_robnet_never_imports_fspkit():
    offenders = [p.name for p in (ROOT / "robnet").glob("*.py") if "fspkit" in _imports(p)]
    assert offenders == []


def test_fspkit_core_imports_only_torch():
    for name in ("fsp.py", "capture.py", "score.py"):
        path = ROOT / "fspkit" / name
        if path.exists():
            third_party = _imports(path) - set(sys.stdlib_module_names) - {"torch", "__future__"}
            assert third_party <= {"fspkit"}, (name, third_party)


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


def test_plots_is_the_only_matplotlib_user():
    for path in list((ROOT / "robnet").glob("*.py")) + list((ROOT / "fspkit").glob("*.py")):
        if path.name != "plots.py":
            assert not ({"matplotlib", "seaborn"} & _imports(path)), path.name
