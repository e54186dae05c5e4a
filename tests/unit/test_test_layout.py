"""No test module imports from another test module: what tests share lives in a conftest.py
(fixtures) or a helper module (tests/support, a folder's flows or helpers), so a test file
can be renamed, moved, run alone or deleted without breaking another."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_TREES = ("tests", "bench")


def is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") and path.suffix == ".py"


def module_path(dotted: str) -> Path | None:
    """The file of a module under ROOT, if it is one of ours."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_of(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imported_modules(path: Path, source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every module an import in `source` may load, inside functions
    too, relative imports resolved against the file's package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package_of(path)
            if node.level:
                parts = parts[:len(parts) - node.level + 1]
            base = ".".join([*parts, *(node.module or "").split(".")] if node.level
                            else (node.module or "").split(".")).strip(".")
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def imports_of_test_modules(path: Path, source: str) -> list[str]:
    bad = []
    for line, dotted in imported_modules(path, source):
        target = module_path(dotted)
        if target is not None and target != path and is_test_module(target):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {dotted}")
    return bad


def test_no_test_module_imports_another():
    bad = []
    for tree in TEST_TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            bad += imports_of_test_modules(path, path.read_text())
    assert bad == [], "move what is shared to a conftest.py or tests/support:\n" + "\n".join(bad)


def test_the_check_sees_every_spelling_of_such_an_import():
    here = ROOT / "tests" / "unit" / "test_example.py"
    spellings = {
        "from tests.unit.test_pass_tokens import SECRET": True,
        "from tests.unit import test_pass_tokens as other": True,
        "import tests.unit.test_pass_tokens": True,
        "from .test_pass_tokens import SECRET": True,
        "from . import test_pass_tokens": True,
        "def f():\n    from tests.unit.test_pass_tokens import SECRET": True,
        "from tests.support.webhooks import apply_webhook": False,
        "from aiohttp.test_utils import TestServer": False,
        "from tests.unit import test_test_layout": False,  # itself, were `here` this file
    }
    here_is_layout = ROOT / "tests" / "unit" / "test_test_layout.py"
    for source, flagged in spellings.items():
        path = here_is_layout if "test_test_layout" in source else here
        assert bool(imports_of_test_modules(path, source)) is flagged, source
