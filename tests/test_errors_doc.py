"""docs/errors.md lists every user-error message popz raises and every per-object flag.

Pure text: the sources are parsed with :mod:`ast` (nothing is imported from them
except the flag table), so this runs in well under a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "popz"
DOC = ROOT / "docs" / "errors.md"
MIN_FRAGMENT = 12


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _parsed_sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(SOURCE.rglob("*.py"))]


def _name(node: ast.expr) -> str | None:
    """``PopzError`` for ``PopzError`` or ``errors.PopzError``; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def popz_error_classes(sources) -> set[str]:
    """PopzError and the names of every class in src/popz whose bases chain to it."""
    bases: dict[str, set[str]] = {}
    for _, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(n for n in map(_name, node.bases) if n)
    found = {"PopzError"}
    while True:
        more = {name for name, parents in bases.items() if name not in found and parents & found}
        if not more:
            return found
        found |= more


def _literal_pieces(node: ast.expr) -> list[str]:
    """The constant text of a message: a string, an f-string's literal parts, or either joined by +."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        pieces, current = [], ""
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                current += part.value
            else:  # a placeholder ends a fragment
                pieces.append(current)
                current = ""
        return pieces + [current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_pieces(node.left) + _literal_pieces(node.right)
    return []


def raised_messages(sources, classes: set[str]) -> list[tuple[str, str]]:
    """(``file:line``, longest literal fragment of the message) of every ``raise <PopzError subclass>(message, ...)``."""
    found = []
    for path, tree in sources:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            name = _name(node.exc.func)
            if not (name and name.endswith("Error") and name in classes and node.exc.args):
                continue
            pieces = [p.strip() for p in _literal_pieces(node.exc.args[0])]
            if pieces:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", max(pieces, key=len)))
    return found


def test_every_error_message_is_documented():
    sources = _parsed_sources()
    classes = popz_error_classes(sources)
    assert {"PopzError", "ConfigError", "FilterError", "ParameterError", "EmulatorFileError"} <= classes
    messages = raised_messages(sources, classes)
    assert len(messages) > 50, "the scan found too few messages: has the raise syntax changed?"
    doc = _collapse(DOC.read_text())
    missing = [
        f"{where}: {fragment!r}"
        for where, fragment in messages
        if len(fragment) >= MIN_FRAGMENT and _collapse(fragment) not in doc
    ]
    assert not missing, f"{len(missing)} message(s) missing from docs/errors.md:\n" + "\n".join(missing)


def test_every_flag_is_documented():
    from popz.posterior.flags import FLAGS

    doc = DOC.read_text()
    bits = [f.bit for f in FLAGS]
    assert all(b > 0 and b & (b - 1) == 0 for b in bits), f"flag bits must be powers of two: {bits}"
    assert len(set(bits)) == len(bits), f"flag bits repeat: {bits}"
    assert len({f.name for f in FLAGS}) == len(FLAGS)
    missing = [f.name for f in FLAGS if f.name not in doc]
    assert not missing, f"flags missing from docs/errors.md: {missing}"
    missing_bits = [f"{f.name}={f.bit}" for f in FLAGS if f"| {f.bit} |" not in doc]
    assert not missing_bits, f"flag bits missing from the table in docs/errors.md: {missing_bits}"
