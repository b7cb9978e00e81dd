"""``skybroker agent``'s package: what it may import, and its pure pieces.

The agent runs on a generic image: every module of ``skybroker/agent`` imports only the
standard library, httpx, ``api_types.boot`` and ``controller.signals`` (checked on the AST, at
any depth, so a lazy import inside a function counts too; those two modules import only the
standard library themselves, and ``controller/__init__.py`` imports nothing). The
handler-output parsing and the backoff are checked here; the behaviour as a process is in
``tests/integration/agent``.
"""

from __future__ import annotations

import ast
import sys
import threading
import uuid as uuidlib
from pathlib import Path

import pytest

from api_types.boot import format_boot_string, new_boot_secret, parse_boot_string
from api_types.rendezvous import AgentReport, ClaimAnswer, RendezvousConfig
from skybroker.agent.apply import Applied, parse_parameters
from skybroker.agent.client import Backoff, parse_config
from skybroker.agent.runner import Agent, AgentOptions

PACKAGE = Path(__file__).resolve().parents[2] / "skybroker" / "agent"
ALLOWED_THIRD_PARTY = {"httpx"}
ALLOWED_LOCAL = {"api_types.boot", "controller.signals"}
ROOT = PACKAGE.parents[1]


def _imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            found.append("skybroker.agent")  # relative: inside the package
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in ALLOWED_THIRD_PARTY
        or module in ALLOWED_LOCAL
        or module == "skybroker.agent"
        or module.startswith("skybroker.agent.")
    )


MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_the_agent_imports_only_the_stdlib_httpx_and_two_local_modules(path: Path) -> None:
    bad = [module for module in _imports(path) if not _allowed(module)]
    assert not bad, f"{path.name} imports {bad}: only the stdlib, httpx and {ALLOWED_LOCAL}"


@pytest.mark.parametrize("module", sorted(ALLOWED_LOCAL))
def test_the_local_modules_the_agent_imports_import_only_the_stdlib(module: str) -> None:
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    bad = [m for m in _imports(path) if m.split(".")[0] not in sys.stdlib_module_names]
    assert not bad, f"{module} imports {bad}, and the agent imports {module}"


def test_importing_controller_signals_loads_no_runtime() -> None:
    assert _imports(ROOT / "controller" / "__init__.py") == []


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_every_agent_module_has_a_docstring_and_all(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    # The entry script (python -m skybroker.agent) runs, it exports nothing.
    assert "__all__" in names or path.name == "__main__.py", f"{path.name} has no __all__"


def test_the_package_list_is_not_empty() -> None:
    assert {p.stem for p in MODULES} >= {"__init__", "cli", "client", "runner", "apply"}


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"a": "x", "n": 3, "ok": true}', {"a": "x", "n": "3", "ok": "true"}),
        ('{"l": [1, "b"]}', {"l": '[1,"b"]'}),
        ('installing\ndone\n{"ip": "10.0.0.1"}\n', {"ip": "10.0.0.1"}),
        ("not json at all", None),
        ("[1, 2]", None),
        ("", None),
        ('{"good": "1", "bad key": "2", "big": "' + "x" * 5000 + '"}', {"good": "1"}),
    ],
)
def test_handler_output_becomes_parameters(stdout: str, expected: dict[str, str] | None) -> None:
    assert parse_parameters(stdout) == expected


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=1.0, cap=8.0)
    delays = [backoff.delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.5 <= backoff.delay() <= 1.0


def test_the_agent_speaks_the_wire_shapes_of_api_types_rendezvous(tmp_path: Path) -> None:
    """What the agent sends validates as ``AgentReport``; what the server sends
    (``RendezvousConfig``, ``ClaimAnswer``) is what the agent reads."""
    boot = parse_boot_string(
        format_boot_string(str(uuidlib.uuid4()), new_boot_secret(), "http://127.0.0.1:9")
    )
    agent = Agent(boot, AgentOptions(tmp_path / "config", address="10.0.0.7"), threading.Event())
    for applied in (
        Applied("Configured", 4, {"role": "web"}),
        Applied("Failed", 5, {}, "handler h exited with 1: boom"),
    ):
        report = AgentReport.model_validate(agent._report_body(applied))
        assert report.config_revision == applied.revision and report.address == "10.0.0.7"
        assert report.message == applied.message and report.parameters == applied.parameters
    served = RendezvousConfig(
        uuid=boot.uuid, config="#!/bin/sh\n", parameters={"a": "b"}, revision=3,
        heartbeat_seconds=10,
    )  # fmt: skip
    read = parse_config(served.model_dump(by_alias=True, mode="json"))
    assert (read.uuid, read.config, read.parameters, read.revision, read.heartbeat_seconds) == (
        boot.uuid, "#!/bin/sh\n", {"a": "b"}, 3, 10,
    )  # fmt: skip
    answer = ClaimAnswer(uuid=boot.uuid, secret=boot.secret, endpoint=boot.endpoint)
    assert set(answer.model_dump(by_alias=True)) == {"uuid", "secret", "endpoint"}
