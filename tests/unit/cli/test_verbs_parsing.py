"""The command line of the object-changing verbs, and completion knowing every verb."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from skyctl.completion import FLAGS, VERBS, completion_script
from skyctl.main import build_parser, parse_args


def test_words_after_flags_still_belong_to_the_verb() -> None:
    args = parse_args(
        ["label", "instance", "web-1", "-n", "acme", "app=db", "zone-", "--overwrite"]
    )
    assert (args.kind, args.changes, args.namespace, args.overwrite) == (
        "instance",
        ["web-1", "app=db", "zone-"],
        "acme",
        True,
    )
    got = parse_args(["get", "instances", "-n", "acme", "web-1", "web-2"])
    assert got.names == ["web-1", "web-2"]


def test_unknown_flags_are_still_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["label", "instance/web-1", "a=b", "--frobnicate"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["version", "extra"])  # a verb without a list takes no extra words


def test_patch_types_and_kubectl_flag_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["patch", "instance/web-1", "-p", "{}"]).type == "merge"
    assert parse_args(["patch", "instance/web-1", "--type", "json", "-p", "[]"]).type == "json"
    with pytest.raises(SystemExit):
        parse_args(["patch", "instance/web-1", "--type", "strategic", "-p", "{}"])
    assert "invalid choice: 'strategic'" in capsys.readouterr().err
    # --dry-run bare keeps meaning the server's dry run; =client and =server as kubectl.
    assert parse_args(["delete", "instance", "x", "--dry-run"]).dry_run == "server"
    assert parse_args(["apply", "-f", "x", "--dry-run=client"]).dry_run == "client"
    assert parse_args(["label", "inst/x", "a=b", "--dry-run=none"]).dry_run is None
    with pytest.raises(SystemExit):
        parse_args(["apply", "-f", "x", "--dry-run=maybe"])
    # delete --wait bare, =true, =false (kubectl users type --wait=false).
    assert parse_args(["delete", "instance", "x", "--wait"]).wait is True
    assert parse_args(["delete", "instance", "x", "--wait=false"]).wait is False
    assert parse_args(["delete", "instance", "x"]).wait is False
    names = parse_args(["delete", "instance", "--wait", "a", "b"]).names
    assert names == ["a", "b"]  # a bare flag takes no value from the next word
    with pytest.raises(SystemExit):
        parse_args(["delete", "instance", "x", "--wait=sometimes"])


def _parser_verbs() -> set[str]:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return set(subparsers.choices)


def test_completion_knows_every_verb_and_the_new_flags() -> None:
    assert set(VERBS.split()) == _parser_verbs()
    for flag in (
        "--field-selector",
        "--output-watch-events",
        "--patch",
        "--type",
        "--overwrite",
        "--show-labels",
        "--namespaced",
    ):
        assert flag in FLAGS.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_the_new_verbs_and_kinds_after_them() -> None:
    script = completion_script("bash")

    def complete(*words: str) -> list[str]:
        line = " ".join(["skyctl", *words])
        program = (
            f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _skyctl; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete("an") == ["annotate"]
    assert set(complete("e")) == {"edit", "events", "explain"}
    assert complete("sync", "g") == ["gitsource", "gs"]  # only a GitSource can be synced
    assert "instance" in complete("label", "inst")
    assert complete("patch", "x", "--type", "m") == ["merge"]
    assert complete("patch", "x", "--type", "j") == ["json"]
    assert "inst" in complete("get", "ins")  # short names complete as well
    assert complete("api-") == ["api-resources"]
