"""The layout of ``monai_gamble.data``: real-data readers never import the synthetic generators
(``data/synthetic/``), so that reading a real dataset does not depend on how the stand-ins are drawn."""

import ast
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "monai_gamble" / "data"


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, relative ones resolved against ``monai_gamble.data``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "monai_gamble.data" if node.level == 1 else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def test_readers_do_not_import_the_generators():
    readers = [p for p in DATA.glob("*.py") if p.name not in {"__init__.py", "preparation.py"}]
    assert readers
    offenders = {p.name: sorted(m for m in _imports(p) if m.startswith("monai_gamble.data.synthetic")) for p in readers}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_layering_check_sees_a_synthetic_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from .synthetic import make_thyroid_ultrasound\n")
    assert "monai_gamble.data.synthetic" in _imports(probe)
