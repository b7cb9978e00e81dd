"""skyctl contexts, completion and usage errors (no server needed)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from skyctl import config
from skyctl.completion import completion_script
from skyctl.main import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.BytesIO())
    return code, out.getvalue(), err.getvalue()


def test_contexts_precedence_and_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("SKYCONFIG", str(path))
    assert config.config_path() == path
    assert run("config", "set-context", "a", "--server", "http://a", "--token", "ta")[0] == 0
    assert run("config", "set-context", "b", "--server", "http://b", "--namespace", "acme")[0] == 0
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = config.load_config(path)
    assert loaded["current-context"] == "a"  # the first context becomes current
    assert config.resolve_context(loaded).server == "http://a"
    chosen = config.resolve_context(loaded, context="b", token="flag-token")
    assert (chosen.server, chosen.token, chosen.namespace) == ("http://b", "flag-token", "acme")
    assert config.resolve_context(loaded, namespace="x").namespace == "x"
    assert run("config", "use-context", "b")[0] == 0
    assert run("config", "current-context")[1] == "b\n"
    code, _, err = run("config", "use-context", "missing")
    assert code == 1 and "missing" in err
    code, _, err = run("get", "instances", "--context", "missing")
    assert code == 1 and "not in the configuration" in err


def test_no_server_is_an_error_and_bad_usage_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "absent.yaml"))
    code, _, err = run("get", "instances")
    assert code == 1 and f"config file {tmp_path / 'absent.yaml'} does not exist" in err, err
    code, _, err = run("get", "instances", "--context", "mine", "--server", "http://x")
    assert code == 1 and "does not exist" in err  # the context was to come from that file
    monkeypatch.delenv("SKYCONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))  # no config at the default path either
    code, _, err = run("get", "instances")
    assert code == 1 and "no server" in err
    assert run("frobnicate")[0] == 2
    assert run("get", "instances", "-o", "toml")[0] == 2
    assert (
        run(
            "wait",
            "instance/x",
            "--for=condition=Ready",
            "--timeout=soon",
            "--server",
            "http://127.0.0.1:9",
        )[0]
        == 2
    )
    assert run("explain", "instance.spec.nope")[0] == 2


def test_completion_scripts_name_verbs_and_kinds() -> None:
    bash = completion_script("bash")
    assert "complete -o default -F _skyctl skyctl" in bash
    assert "instances" in bash and "apply" in bash
    assert completion_script("zsh").startswith("#compdef skyctl")
    assert run("completion", "bash")[1] == bash
