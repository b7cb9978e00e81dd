"""deploy/ checked without a Docker engine or a systemd to run it on (issue #16, item 6).

The compose file is validated against the Compose Specification's JSON schema (vendored in
tests/schemas/, see its README for why and from where), then for what the schema cannot know:
every skybroker command line parses with skybroker's own argument parser, names every etcd
member, and is health-checked on the port it listens on; the etcd members agree on one initial
cluster. The systemd units are parsed, their ``ExecStart`` expanded from the example
environment files and parsed by the same parser, and run through ``systemd-analyze verify``
(in a scratch root holding stand-ins for the two binaries) where that program exists. The
Dockerfile is checked to ship every package ``pip install .`` needs and to run ``skybroker``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from controller.health import probe_routes
from skybroker.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
ETCD_MEMBERS = 3
PROBES = set(probe_routes(lambda: True)) - {"/metrics"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _parse(argv: list[str]) -> argparse.Namespace:
    """skybroker's own parser; an unknown flag or a missing required one fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"skybroker does not accept: {shlex.join(argv)}")


def _services(kind: str) -> dict[str, argparse.Namespace]:
    """The compose services running ``skybroker <kind>``, with their parsed command lines."""
    found = {}
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if isinstance(command, list) and kind in command:
            found[name] = _parse([str(word) for word in command])
    return found


def _healthcheck_url(service: dict[str, Any]) -> str:
    test = " ".join(service["healthcheck"]["test"])
    match = re.search(r"https?://[^'\" ]+", test)
    assert match, f"healthcheck without a URL: {test}"
    return match.group(0)


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(_compose())
    ]
    assert errors == []
    # The schema is not one that accepts anything: a misspelt service key is an error.
    assert not validator.is_valid({"services": {"x": {"imag": "etcd"}}})


def test_compose_has_the_production_shape() -> None:
    services = _compose()["services"]
    etcd = [name for name, service in services.items() if "etcd" in service.get("image", "")]
    assert len(etcd) == ETCD_MEMBERS
    assert len(_services("apiserver")) == 2
    controllers = _services("controller")
    assert len(controllers) == 3
    # They split one set of shards: every one names the same number, enough to go round.
    assert len({args.shards for args in controllers.values()}) == 1
    assert next(iter(controllers.values())).shards >= len(controllers)
    for name in [*_services("apiserver"), *controllers]:
        assert set(services[name]["depends_on"]) == set(etcd), name


def test_every_skybroker_process_names_every_etcd_member() -> None:
    services = _compose()["services"]
    members = {
        urlsplit(service["environment"]["ETCD_ADVERTISE_CLIENT_URLS"]).netloc
        for service in services.values()
        if "etcd" in service.get("image", "")
    }
    assert len(members) == ETCD_MEMBERS
    for name, args in {**_services("apiserver"), **_services("controller")}.items():
        endpoints = {urlsplit(url).netloc for url in args.etcd_endpoints.split(",")}
        assert endpoints == members, name


def test_etcd_members_agree_on_one_initial_cluster() -> None:
    services = _compose()["services"]
    members = {
        name: service["environment"]
        for name, service in services.items()
        if "etcd" in service.get("image", "")
    }
    clusters = {env["ETCD_INITIAL_CLUSTER"] for env in members.values()}
    assert len(clusters) == 1
    initial = dict(pair.split("=", 1) for pair in clusters.pop().split(","))
    assert set(initial) == set(members)
    for name, env in members.items():
        assert env["ETCD_NAME"] == name
        assert initial[name] == env["ETCD_INITIAL_ADVERTISE_PEER_URLS"]
        assert urlsplit(env["ETCD_ADVERTISE_CLIENT_URLS"]).hostname == name
        # skybroker compacts (the controllers' --compaction-interval); etcd must not as well.
        assert env["ETCD_AUTO_COMPACTION_RETENTION"] == "0"
        assert env["ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL"] == "5s"
    assert {env["ETCD_INITIAL_CLUSTER_TOKEN"] for env in members.values()} == {"skybroker"}
    controllers = _services("controller")
    assert all(args.compaction_interval > 0 for args in controllers.values())


def test_healthchecks_probe_the_served_endpoints_on_the_served_ports() -> None:
    services = _compose()["services"]
    secrets = _compose()["secrets"]
    for name, args in _services("apiserver").items():
        url = urlsplit(_healthcheck_url(services[name]))
        assert url.path in PROBES, name
        assert url.port == int(args.listen.rsplit(":", 1)[1]), name
        assert args.listen.startswith("0.0.0.0:"), f"{name} must listen beyond its container"
        # Both files come from compose secrets, mounted at /run/secrets/NAME.
        for path in (args.token_file, args.encryption_key_file):
            assert Path(path).parent == Path("/run/secrets"), name
            assert Path(path).name in services[name]["secrets"], name
            assert Path(path).name in secrets, name
    for name, args in _services("controller").items():
        url = urlsplit(_healthcheck_url(services[name]))
        assert url.path in PROBES, name
        assert url.port == int(args.health_listen.rsplit(":", 1)[1]), name
        assert Path(args.encryption_key_file).name in services[name]["secrets"], name


def test_dockerfile_ships_every_package_and_runs_skybroker() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) ", dockerfile, flags=re.MULTILINE))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    assert re.search(r'^ENTRYPOINT \["skybroker"\]$', dockerfile, flags=re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd
    _parse(json.loads(cmd.group(1)))


# --- systemd units -----------------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as ordered (key, value) lists: systemd repeats keys, and a line
    ending in a backslash continues on the next."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in path.read_text().splitlines():
        line = logical + raw.strip()
        if line.endswith("\\"):
            logical = line[:-1] + " "
            continue
        logical = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}: {line}"
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}: {line}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


def _exec_start(unit: str, instance: str) -> list[str]:
    """``ExecStart`` of ``unit`` for ``instance``, with ``%i`` and ``${VAR}`` expanded from the
    example environment file as systemd would (``${VAR}`` stays one word)."""
    service = dict(_unit(UNITS / unit)["Service"])
    env = _env_file(UNITS / "skybroker.env.example")
    words = shlex.split(service["ExecStart"].replace("%i", instance))

    def expand(word: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], word)

    return [expand(word) for word in words]


SKYBROKER_UNITS = {
    "skybroker-apiserver@.service": ("7480", "apiserver"),
    "skybroker-controller@.service": ("8081", "controller"),
}


@pytest.mark.parametrize("unit", sorted(SKYBROKER_UNITS))
def test_skybroker_unit_runs_a_real_command(unit: str) -> None:
    instance, command = SKYBROKER_UNITS[unit]
    sections = _unit(UNITS / unit)
    assert set(sections) == {"Unit", "Service", "Install"}
    service = dict(sections["Service"])
    assert service["EnvironmentFile"] == "/etc/skybroker/skybroker.env"
    assert service["Restart"] in {"on-failure", "always"}
    assert service["User"] == "skybroker"
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[hardening] in {"yes", "strict"}, hardening
    assert service["CapabilityBoundingSet"] == ""
    argv = _exec_start(unit, instance)
    assert Path(argv[0]).name == "skybroker"
    args = _parse(argv[1:])
    assert args.command == command
    env = _env_file(UNITS / "skybroker.env.example")
    assert args.etcd_endpoints == env["SKYBROKER_ETCD_ENDPOINTS"]
    assert len(args.etcd_endpoints.split(",")) == ETCD_MEMBERS
    listen = args.listen if command == "apiserver" else args.health_listen
    assert listen.endswith(f":{instance}")


def test_etcd_unit_and_member_environment() -> None:
    service = dict(_unit(UNITS / "etcd@.service")["Service"])
    assert service["EnvironmentFile"] == "/etc/etcd/%i.env"
    assert service["Type"] == "notify"
    assert Path(service["ExecStart"]).name == "etcd"
    env = _env_file(UNITS / "etcd.env.example")
    initial = dict(pair.split("=", 1) for pair in env["ETCD_INITIAL_CLUSTER"].split(","))
    assert len(initial) == ETCD_MEMBERS
    assert initial["etcd-0"] == env["ETCD_INITIAL_ADVERTISE_PEER_URLS"]
    assert env["ETCD_AUTO_COMPACTION_RETENTION"] == "0"
    skybroker_env = _env_file(UNITS / "skybroker.env.example")
    member_hosts = {urlsplit(url).hostname for url in initial.values()}
    client_hosts = {
        urlsplit(url).hostname for url in skybroker_env["SKYBROKER_ETCD_ENDPOINTS"].split(",")
    }
    assert member_hosts == client_hosts


def _has_systemd_analyze() -> bool:
    return shutil.which("systemd-analyze") is not None


@pytest.mark.skipif(not _has_systemd_analyze(), reason="systemd-analyze is not installed here")
@pytest.mark.parametrize(
    "instance",
    [
        "etcd@etcd-0.service",
        "skybroker-apiserver@7480.service",
        "skybroker-controller@8081.service",
    ],
)
def test_systemd_analyze_verify(instance: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` in a scratch root: the system's own units (for the targets
    the units name) and executable stand-ins where the units expect the two binaries."""
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        pytest.skip(f"{system_units} is missing: no systemd units to verify against")
    shutil.copytree(system_units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    target = tmp_path / "etc/systemd/system"
    target.mkdir(parents=True)
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, target / unit.name)
        for word in shlex.split(dict(_unit(unit)["Service"])["ExecStart"]):
            binary = tmp_path / word.lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
            break
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", instance],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys or bad values too, only warning: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
