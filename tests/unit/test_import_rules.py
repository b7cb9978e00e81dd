"""DESIGN §1's import rules, checked on the source tree (every import, at any depth)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"api_types", "controller", "providers", "reconcilers", "skybroker"}

#: package → (allowed local modules as prefixes); a module matches "x" if it is x or x.*
ALLOWED: dict[str, tuple[str, ...]] = {
    "api_types": ("api_types",),
    "controller": ("api_types", "controller"),
    "providers": ("api_types", "providers", "controller.errors"),
    "reconcilers": ("api_types", "controller", "providers", "reconcilers"),
    "skybroker": tuple(LOCAL),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # "from controller import errors" imports controller.errors
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(package: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top not in LOCAL:
                continue
            if package == "providers" and module == "controller":
                continue  # the "from controller import errors" form; its alias is checked
            if not allowed(module, ALLOWED[package]):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    assert violations(package) == []


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("from controller.store import objects\nimport reconcilers.instance\n")
    modules = [m for _, m in imported_modules(sample)]
    assert not all(allowed(m, ALLOWED["providers"]) for m in modules if m != "controller")
    assert allowed("controller.errors", ALLOWED["providers"])
    assert not allowed("controller.store.objects", ALLOWED["providers"])
    assert not allowed("skybroker.main", ALLOWED["reconcilers"])
