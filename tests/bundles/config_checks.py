"""Static checks of bundle configs: which ``"$..."`` expressions hold logic, and which keys a bundle's
docs name.

**Logic in a ``"$"`` expression.** A bundle config should read as a list of components and values;
programs belong in named, tested functions. :func:`logic_reasons` parses an expression with Python's
``ast`` (after replacing MONAI's ``@id`` references by plain names) and lists what makes it a
program:

- ``lambda``, comprehensions (list, set, dict, generator) and if-expressions (``a if c else b``);
- string building: f-strings, ``'...'.format(...)``, ``'...'.join(...)``, ``%`` formatting, and ``+``
  with a string literal on either side, **path joins such as** ``@ckpt_dir + '/model.pt'``
  **included** (``os.path.join(@ckpt_dir, 'model.pt')`` is a plain call and is not logic);
- calls that act rather than compute: ``print``, ``open``, ``setattr``, ``delattr``, ``exec``,
  ``eval``, ``__import__``; and assignments (``:=``).

Not logic: a reference (``@network``), an attribute access (``@network.parameters``), a
subscript (``@datalist['training']``), a constant, a plain function or method call whose arguments
are not logic (``len(@datalist['training'])``, ``monai.handlers.from_engine(['loss'], first=True)``),
list/tuple/dict displays, comparisons, ``and``/``or``/``not`` and arithmetic between numbers
(a ``_disabled_`` condition such as ``@critic is None`` is a value, not a program). ``$import ...``
statements are not counted.

**Keys named in the docs.** :func:`doc_keys` collects every ``--key`` of the command lines and every
```key``` in backquotes of a bundle's ``docs/README.md`` that looks like a config id; the tests check
each against the parsed configs.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["config_expressions", "doc_keys", "logic_expressions", "logic_reasons"]

#: MONAI's reference syntax inside an expression: ``@id`` with ``#`` separating nested keys
_REFERENCE = re.compile(r"@([A-Za-z_][\w#]*)")
#: calls that act on the world (or on objects) rather than compute a value
_ACTION_CALLS = {"print", "open", "setattr", "delattr", "exec", "eval", "__import__"}
#: string methods that build strings
_STRING_BUILDERS = {"format", "join", "format_map"}


def _is_string(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(node, ast.JoinedStr)


def logic_reasons(expression: str) -> list[str]:
    """What makes a ``"$..."`` expression a program (see the module docstring); empty if nothing.

    Args:
        expression: the config value, with or without its leading ``"$"``.

    Returns:
        The sorted names of the kinds of logic found (``"lambda"``, ``"comprehension"``,
        ``"if-expression"``, ``"string building"``, ``"print"``, ...).

    Raises:
        SyntaxError: if the expression is not Python once the references are replaced.
    """
    text = expression[1:] if expression.startswith("$") else expression
    text = text.strip()
    if re.match(r"(import|from)\s", text):
        return []
    tree = ast.parse(_REFERENCE.sub(lambda m: "__ref_" + m.group(1).replace("#", "__") + "__", text))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            found.add("lambda")
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            found.add("comprehension")
        elif isinstance(node, ast.IfExp):
            found.add("if-expression")
        elif isinstance(node, ast.JoinedStr):
            found.add("string building")
        elif isinstance(node, ast.BinOp) and (
            (isinstance(node.op, ast.Add) and (_is_string(node.left) or _is_string(node.right)))
            or (isinstance(node.op, ast.Mod) and _is_string(node.left))
        ):
            found.add("string building")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _ACTION_CALLS:
                found.add(func.id)
            elif isinstance(func, ast.Attribute) and func.attr in _STRING_BUILDERS and _is_string(func.value):
                found.add("string building")
            elif isinstance(func, ast.Attribute) and func.attr in _ACTION_CALLS:
                found.add(func.attr)
        elif isinstance(node, (ast.NamedExpr, ast.Assign, ast.AugAssign)):
            found.add("assignment")
    return sorted(found)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}#{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}#{i}")
    elif isinstance(value, str) and value.startswith("$"):
        yield path, value


def config_expressions(config_file: Path) -> list[tuple[str, str]]:
    """Every ``"$..."`` value of a JSON config as ``(config id, expression)``."""
    return list(_walk(json.loads(Path(config_file).read_text()), ""))


def logic_expressions(bundle: Path) -> list[tuple[str, str, list[str], str]]:
    """The expressions with logic in every ``configs/*.json`` of a bundle, as
    ``(file name, config id, reasons, expression)``."""
    out = []
    for path in sorted((Path(bundle) / "configs").glob("*.json")):
        if path.name == "metadata.json":
            continue
        for key, expr in config_expressions(path):
            reasons = logic_reasons(expr)
            if reasons:
                out.append((path.name, key, reasons, expr))
    return out


#: ``--key`` on a command line: an id as MONAI's ``run`` takes it (``#`` separates nested keys)
_FLAG = re.compile(r"(?<![\w-])--([A-Za-z_][\w#]*)")
#: a backquoted word that may be a config id: letters, digits, ``_`` and ``#``, with an ``_`` or a ``#``
_QUOTED = re.compile(r"`([A-Za-z_][\w#]*)`")


def doc_keys(readme: Path) -> dict[str, set[str]]:
    """The keys that a bundle's ``docs/README.md`` names.

    Returns:
        ``{"flags": {...}, "quoted": {...}}``: every ``--key`` (command-line overrides) and every
        backquoted word made of identifier characters and ``#`` that holds an ``_`` or a ``#``
        (``key_name``, ``train#trainer#max_epochs``; plain words such as ```image``` are left out).
    """
    text = Path(readme).read_text()
    flags = set(_FLAG.findall(text))
    quoted = {w for w in _QUOTED.findall(text) if "_" in w or "#" in w}
    return {"flags": flags, "quoted": quoted}
