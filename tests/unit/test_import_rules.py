"""DESIGN §1's import rules, checked on the source tree (every import, at any depth).

Two kinds of rule: what each top-level package may import from the others, and finer contracts
*inside* packages (the store is the bottom layer of the runtime, the workqueue depends on nothing
but the clock, the two cloud drivers never reach into each other, only skyctl's ``--etcd``
backend uses the API server's admission pipeline, the placement policy stays pure, the apply
engine knows kinds only through the registry).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"api_types", "controller", "apiserver", "skyctl", "providers", "reconcilers", "skybroker"}

#: the part of api_types the runtime may see: the envelope, the registry, its own Event kind and
#: the rendezvous records it stores beside events (§11)
RUNTIME_API = (
    "api_types.meta",
    "api_types.registry",
    "api_types.events",
    "api_types.validation",
    "api_types.rendezvous",
)

#: package → allowed local modules, as prefixes; a module matches "x" if it is x or x.*
ALLOWED: dict[str, tuple[str, ...]] = {
    "api_types": ("api_types",),
    "controller": (*RUNTIME_API, "controller"),
    "apiserver": ("api_types", "controller", "apiserver"),
    "skyctl": ("api_types", "controller", "skyctl", "apiserver"),
    "providers": ("api_types", "providers", "controller.errors"),
    "reconcilers": ("api_types", "controller", "providers", "reconcilers"),
    "skybroker": tuple(LOCAL),
}


@dataclass(frozen=True)
class Contract:
    """Modules under ``inside`` (a module prefix) may import, of ``guarded``, only ``allowed``."""

    inside: str
    guarded: str
    allowed: tuple[str, ...]
    why: str


CONTRACTS = (
    Contract(
        "controller.store",
        "controller",
        ("controller.store", "controller.errors", "controller.labels", "controller.clock"),
        "the store is the runtime's bottom layer: caches, controllers and leases build on it",
    ),
    Contract(
        "controller.workqueue",
        "controller",
        ("controller.workqueue", "controller.clock"),
        "the queue is a pure data structure on an injected clock",
    ),
    Contract(
        "controller.leader",
        "controller",
        ("controller.leader", "controller.clock", "controller.errors", "controller.store"),
        "leases know the store and the clock, nothing of caches or controllers",
    ),
    Contract(
        "providers.simulated",
        "providers.ec2",
        (),
        "the drivers are siblings behind one protocol",
    ),
    Contract(
        "providers.ec2",
        "providers.simulated",
        (),
        "the drivers are siblings behind one protocol",
    ),
    Contract(
        "controller.apply",
        "controller",
        (
            "controller.apply",
            "controller.errors",
            "controller.mergepatch",
            "controller.store.codec",
        ),
        "the apply engine is shared by skyctl and reconcilers: no cache, store or controller",
    ),
    Contract(
        "controller.apply",
        "api_types",
        ("api_types.meta", "api_types.registry"),
        "the apply engine knows kinds only through the registry, never a kind module",
    ),
    Contract(
        "skyctl",
        "apiserver",
        (),
        "skyctl speaks HTTP; only its --etcd backend reuses the admission pipeline",
    ),
    Contract(
        "reconcilers.placement.policy",
        "controller",
        (),
        "placement policy is pure: no store, no cache, no clock",
    ),
    Contract(
        "reconcilers.placement.policy",
        "providers",
        ("providers.types",),
        "placement policy reads the clouds' value types, never a cloud",
    ),
    Contract(
        "reconcilers.placement.policy",
        "reconcilers",
        ("reconcilers.hardware",),
        "placement policy gets its inputs as arguments, never from Deps, accounts or caches",
    ),
    *(
        Contract(
            module,
            layer,
            allowed_prefixes,
            "the group scheduler is pure like the policy it builds on: no store, no cache, no "
            "clock, no cloud",
        )
        for module in (
            "reconcilers.placement.group",
            "reconcilers.placement.groupsearch",
            "reconcilers.placement.grouptext",
            "reconcilers.placement.grouptypes",
        )
        for layer, allowed_prefixes in (
            ("controller", ()),
            ("providers", ()),
            (
                "reconcilers",
                (
                    "reconcilers.placement.policy",
                    "reconcilers.placement.group",
                    "reconcilers.placement.groupsearch",
                    "reconcilers.placement.grouptext",
                    "reconcilers.placement.grouptypes",
                ),
            ),
        )
    ),
)

#: the one module each exemption covers
EXEMPT: dict[tuple[str, str], str] = {("skyctl", "apiserver"): "skyctl.etcd"}


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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(package: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] not in LOCAL or module in LOCAL:
                # a bare package name comes from "from X import y"; X.y is checked instead
                continue
            if not allowed(module, ALLOWED[package]):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


def contract_violations(contract: Contract) -> list[str]:
    problems = []
    exempt = EXEMPT.get((contract.inside, contract.guarded))
    inside = ROOT.joinpath(*contract.inside.split("."))
    paths = [inside.with_suffix(".py")] if inside.with_suffix(".py").is_file() else []
    for path in paths or sorted(inside.rglob("*.py")):
        if exempt and allowed(module_name(path), (exempt,)):
            continue
        for line, module in imported_modules(path):
            guarded = allowed(module, (contract.guarded,)) and module != contract.guarded
            if guarded and not allowed(module, contract.allowed):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}: {contract.why}")
    return problems


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    assert violations(package) == []


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c.inside}-{c.guarded}")
def test_contracts_inside_packages_hold(contract: Contract) -> None:
    assert contract_violations(contract) == []


def test_every_package_of_the_tree_has_rules() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(ALLOWED)


def test_the_runtime_names_no_business_kind() -> None:
    assert not allowed("api_types.compute", ALLOWED["controller"])
    assert not allowed("api_types.tenancy", ALLOWED["controller"])
    assert allowed("api_types.meta", ALLOWED["controller"])


def test_the_checker_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("from controller.store import objects\nimport reconcilers.instance\n")
    modules = [m for _, m in imported_modules(sample) if m not in LOCAL]
    assert not all(allowed(m, ALLOWED["providers"]) for m in modules)
    assert allowed("controller.errors", ALLOWED["providers"])
    assert not allowed("controller.store.objects", ALLOWED["providers"])
    assert not allowed("skybroker.main", ALLOWED["reconcilers"])
    assert not allowed("apiserver.handlers", ALLOWED["controller"])
    store_contract = CONTRACTS[0]
    assert allowed("controller.errors", store_contract.allowed)
    assert not allowed("controller.cache", store_contract.allowed)
