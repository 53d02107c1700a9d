"""No docstring of the package holds a control character: a ``\\t``, ``\\b`` or ``\\f`` in math is a
backslash escape that a non-raw string turned into a tab, backspace or form feed (``\\tfrac``,
``\\big``, ``\\frac``), which corrupts the rendered formula."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import monai_gamble

PACKAGE_DIR = Path(monai_gamble.__file__).parent


def control_characters(text: str | None) -> list[str]:
    """The control characters of ``text`` other than the newline, as their reprs."""
    return sorted({repr(ch) for ch in text or "" if (ord(ch) < 32 and ch != "\n") or ord(ch) == 127})


def public_objects():
    """(qualified name, object) of every public module, class, function, method and property."""
    names = [monai_gamble.__name__] + [
        m.name for m in pkgutil.walk_packages(monai_gamble.__path__, prefix="monai_gamble.") if "._" not in m.name
    ]
    seen = set()
    for module_name in names:
        module = importlib.import_module(module_name)
        yield module_name, module
        public = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
        for name in public:
            obj = getattr(module, name, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if inspect.isfunction(member):
                        yield f"{module_name}.{name}.{attr}", member


def test_public_docstrings_have_no_control_characters():
    bad = {name: control_characters(obj.__doc__) for name, obj in public_objects()}
    bad = {name: chars for name, chars in bad.items() if chars}
    assert not bad, f"docstrings with control characters (make them raw strings, r'''...'''): {bad}"


def test_the_check_finds_them():
    assert control_characters("L = \tfrac12\big[x\big] + \frac12") == ["'\\t'", "'\\x08'", "'\\x0c'"]
    assert control_characters(r"L = \tfrac12\big[x\big]") == []


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_no_docstring_in_the_sources_has_control_characters(path):
    """Also the private ones, from the source of every file of the package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    bad = {getattr(n, "name", "<module>"): control_characters(ast.get_docstring(n, clean=False)) for n in nodes}
    assert not {k: v for k, v in bad.items() if v}
