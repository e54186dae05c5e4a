"""The product code touches no dependency's private attributes and never asks a dependency
for its version: an upgrade changes what it documents, nothing else of ours.

The walk is static, so it decides who made an object by the only means it has:
- `self._x` / `cls._x` are ours, unless the class derives from a library class and `_x`
  is not an attribute our own class defines or assigns (then it is the library's);
- `<anything else>._x` is someone else's, except namedtuple's public `_replace` & co.;
- a method named `_x` that a library base class also has overrides its internals;
- `getattr(obj, "_x")` and its kin are the same reach, spelled as a call;
- a library's version, as `__version__` or from `importlib.metadata`, gates nothing.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("gateway", "order_service", "verification_service", "webhook_service", "notifier",
           "shared")
# namedtuple's documented API is spelled with an underscore so it never clashes with a field
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})
OWN = "self", "cls"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def product_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


class Walker(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.imported: dict[str, str] = {}  # local name -> "module.attr" it was imported as
        self.found: list[str] = []
        self.library_class: list[tuple[type, set[str]] | None] = []  # per enclosing class

    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.module}:{node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imported[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "__version__":
                self.report(node, f"imports {node.module}.__version__")
            if node.module and node.level == 0:
                self.imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [base for base in map(self.library_base, node.bases) if base is not None]
        own = {item.name for item in node.body
               if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        own |= {target.id for item in node.body if isinstance(item, (ast.Assign, ast.AnnAssign))
                for target in getattr(item, "targets", [getattr(item, "target", None)])
                if isinstance(target, ast.Name)}
        own |= {sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)
                and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name)
                and sub.value.id in OWN}
        for item in node.body:
            if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_private(item.name)
                    and any(hasattr(base, item.name) for base in bases)):
                self.report(item, f"overrides a library's private {item.name}")
        self.library_class.append((tuple(bases), own) if bases else None)
        self.generic_visit(node)
        self.library_class.pop()

    def library_base(self, expr: ast.expr) -> type | None:
        """The class a base expression names when a library (not our code) defines it."""
        dotted = ast.unparse(expr)
        head, _, rest = dotted.partition(".")
        origin = self.imported.get(head)
        if origin is None or origin.split(".")[0] in PRODUCT:
            return None
        path = f"{origin}.{rest}" if rest else origin
        module, _, name = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            try:
                return importlib.import_module(path)
            except ImportError:
                return None

    def visit_Call(self, node: ast.Call) -> None:
        name = ast.unparse(node.func)
        if name in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
            target, attr = node.args[0], node.args[1]
            if (isinstance(attr, ast.Constant) and isinstance(attr.value, str)
                    and (is_private(attr.value) or attr.value == "__version__")
                    and not (isinstance(target, ast.Name) and target.id in OWN)):
                self.report(node, f"reaches into {ast.unparse(node)}")
        if name in ("metadata.version", "importlib.metadata.version") or (
                self.imported.get(name) == "importlib.metadata.version"):
            self.report(node, f"asks for a version: {ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "__version__":
            self.report(node, f"reads {ast.unparse(node)}")
        elif is_private(node.attr) and node.attr not in NAMEDTUPLE_API:
            mine = isinstance(node.value, ast.Name) and node.value.id in OWN
            if not mine:
                self.report(node, f"reaches into {ast.unparse(node)}")
            elif self.library_class and self.library_class[-1] is not None:
                _, own = self.library_class[-1]
                if node.attr not in own:
                    self.report(node, f"reads a library base's {ast.unparse(node)}")
        self.generic_visit(node)


def violations(path: Path) -> list[str]:
    walker = Walker(str(path.relative_to(ROOT)))
    walker.visit(ast.parse(path.read_text(), str(path)))
    return walker.found


def test_the_walk_covers_the_product_code():
    assert len(product_files()) > 50


@pytest.mark.parametrize("source, expected", [
    ("import asyncpg\nx = asyncpg.__version__", 1),
    ("from qrcode import __version__", 1),
    ("def f(code):\n    code._cache = 1", 1),
    ("def f(conn):\n    return conn._con._protocol", 2),
    ("import asyncpg\nclass P(asyncpg.Pool):\n    def f(self):\n        return self._holders",
     1),
    ("import asyncpg\nclass P(asyncpg.Pool):\n    async def _acquire(self, t):\n        pass", 1),
    ("class Mine:\n    def __init__(self):\n        self._x = 1\n    def f(self):\n"
     "        return self._x, type(self).__name__", 0),
    ("import asyncio\nclass Proto(asyncio.Protocol):\n    def __init__(self):\n"
     "        self._buf = b''\n    def f(self):\n        return self._buf", 0),
    ("def f(parts):\n    return parts._replace(path='/')", 0),
    ("def f(conn):\n    return getattr(conn, '_holder', None)", 1),
    ("def f(self):\n    return getattr(self, '_cache', None)", 0),
    ("from importlib.metadata import version\nold = version('asyncpg') < '1'", 1),
    ("from importlib import metadata\nold = metadata.version('asyncpg')", 1),
])
def test_the_walk_tells_private_access_apart(source, expected):
    walker = Walker("sample")
    walker.visit(ast.parse(source))
    assert len(walker.found) == expected, walker.found


def test_the_product_code_uses_only_what_its_dependencies_publish():
    found = [v for path in product_files() for v in violations(path)]
    assert not found, "\n".join(found)


def test_no_write_to_qrcodes_data_cache():
    """qrcode's `data_cache` carries no underscore but is its internal state all the same."""
    offenders = [str(p.relative_to(ROOT)) for p in product_files() if "data_cache" in p.read_text()]
    assert not offenders, offenders
