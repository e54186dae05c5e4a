"""Arrows point down: `shared/` is the library the services stand on, so it imports no
service and not `ops/` (which stands on the services); `bench/` does not import the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway", "order_service", "verification_service", "webhook_service", "notifier",
            "razorpay_sandbox"}


def imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module `source` (a file of `package`) imports, at any depth (inside functions
    too), as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = ".".join(package[: len(package) - node.level + 1])
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def top_level(name: str) -> str:
    return name.split(".", 1)[0]


def offending_imports(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).parent.parts
        for name in sorted(imported_modules(path.read_text(), parts)):
            if top_level(name) in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_shared_imports_no_service_and_not_ops():
    assert offending_imports("shared", SERVICES | {"ops", "testkit", "bench", "tests"}) == []


@pytest.mark.parametrize("package", sorted(SERVICES | {"shared", "ops"}))
def test_what_the_image_ships_imports_no_test_fixture(package):
    """The image holds the services, `shared/` and `ops/`; `testkit/` stays out of it."""
    assert offending_imports(package, {"testkit", "tests", "bench"}) == []


def test_bench_does_not_import_the_tests():
    assert offending_imports("bench", {"tests"}) == []


@pytest.mark.parametrize("source, expected", [
    ("import order_service.reconciler", {"order_service.reconciler"}),
    ("def f():\n    from notifier import dlq", {"notifier"}),
    ("from . import metrics", {"shared.sub"}),
    ("from .db import create_pool", {"shared.sub.db"}),
    ("from ..db import pool", {"shared.db"}),
    ("import ops.cli, gateway", {"ops.cli", "gateway"}),
])
def test_the_walker_sees_every_kind_of_import(source, expected):
    """The checks above could pass by not seeing imports: show that each form is seen."""
    assert imported_modules(source, ("shared", "sub")) == expected
