"""kubectl's habits without a server: JSONPath, JSON Patch, kind names, api-resources, tables
that line up and fit the terminal, usage errors that say what is wrong."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api_types import registry
from skyctl import kinds
from skyctl.jsonpatch import JsonPatchError, apply_json_patch
from skyctl.jsonpath import JsonPathError, Template
from skyctl.main import main
from skyctl.output import Output, StreamPrinter, format_groups, parse_output

LIST = {
    "kind": "List",
    "items": [
        {
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"ports": [80, 443]},
            "status": {"phase": "Running", "cpu": 4},
        },
        {
            "metadata": {"name": "b"},
            "spec": {"ports": []},
            "status": {"phase": "Pending", "cpu": 1},
        },
    ],
}


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdout=out, stderr=io.StringIO(), stdin=io.BytesIO()), out.getvalue()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}',
         "a\tRunning\nb\tPending\n"),
        ('{.items[?(@.status.phase=="Pending")].metadata.name}', "b"),
        ("{.items[?(@.status.cpu>=2)].metadata.name}", "a"),
        ("{.items[?(@.metadata.labels)].metadata.name}", "a"),
        ("{.items[-1].metadata.name}", "b"),
        ("{.items[0:1].metadata.name}", "a"),
        ("{.items[0].spec.ports}", "[80,443]"),
        ("{.items[0].spec.ports[*]}", "80 443"),
        ("{..phase}", "Running Pending"),
        ("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", "web"),
        ("{.items[0].metadata.labels['app.kubernetes.io/name']}", "web"),
        ("names: {$.items[*]['metadata']['name']}.", "names: a b."),
        ("{.items[5].metadata.name}{.nope}", ""),  # missing is empty, as kubectl get has it
    ],
)  # fmt: skip
def test_jsonpath_templates(template: str, expected: str) -> None:
    assert Template.parse(template).render(LIST) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{.items[", "unclosed"),
        ("{range .items[*]}{.a}", "without an {end}"),
        ("{end}", "without a {range"),
        ("{.items[x]}", "[x] is not an index"),
        ("{.items[?(@.a==bare)]}", "'bare' is neither a path"),
        ("{.items[::0]}", "step of a slice cannot be 0"),
    ],
)
def test_jsonpath_errors_say_what_and_where(template: str, problem: str) -> None:
    with pytest.raises(JsonPathError, match=problem.replace("[", r"\[").replace("{", r"\{")):
        Template.parse(template)


def test_json_patch_is_all_or_nothing_and_names_the_failing_operation() -> None:
    document = {"spec": {"rules": [{"port": 80}], "a~b/c": 1}}
    patched = apply_json_patch(
        document,
        [
            {"op": "add", "path": "/spec/rules/0", "value": {"port": 22}},
            {"op": "replace", "path": "/spec/a~0b~1c", "value": 2},
            {"op": "copy", "from": "/spec/rules/1", "path": "/spec/first"},
            {"op": "move", "from": "/spec/first", "path": "/spec/rules/-"},
            {"op": "test", "path": "/spec/rules/2/port", "value": 80},
        ],
    )
    assert patched == {"spec": {"rules": [{"port": 22}, {"port": 80}, {"port": 80}], "a~b/c": 2}}
    assert document == {"spec": {"rules": [{"port": 80}], "a~b/c": 1}}  # untouched
    for operations, message in (
        (
            [{"op": "remove", "path": "/spec/rules/3"}],
            "operation 0 (remove /spec/rules/3): index 3",
        ),
        ([{"op": "replace", "path": "/spec/x", "value": 1}], "operation 0 (replace /spec/x)"),
        (
            [
                {"op": "add", "path": "/spec/y", "value": 1},
                {"op": "test", "path": "/spec/y", "value": 2},
            ],
            "operation 1 (test /spec/y): the value is 1, not 2",
        ),
        ([{"op": "move", "from": "/spec", "path": "/spec/inner"}], "into itself"),
        ([{"op": "add", "path": "/spec/rules/01", "value": 1}], "'01' is not an array index"),
    ):
        with pytest.raises(JsonPatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
            apply_json_patch(document, operations)


def test_short_names_live_in_one_table_and_future_kinds_stay_unknown() -> None:
    assert kinds.resolve_kind("inst").kind == "Instance"
    assert kinds.resolve_kind("HP").kind == "HardwareProfile"
    assert [i.kind for i in kinds.resolve_kinds("vol,sn,pa,vol")] == [
        "Volume",
        "Subnet",
        "ProviderAccount",
    ]
    registered = {info.kind for info in registry.all_kinds()}
    for kind, names in kinds.SHORT_NAMES.items():
        for name in names:
            if kind in registered:
                assert kinds.resolve_kind(name).kind == kind
            else:  # e.g. bc while BootConfig is not registered yet
                with pytest.raises(kinds.UnknownKind, match="api-resources"):
                    kinds.resolve_kind(name)
    every_name = [n for names in kinds.SHORT_NAMES.values() for n in names]
    every_name += [n for i in registry.all_kinds() for n in (i.kind.lower(), i.plural)]
    assert len(every_name) == len(set(every_name)), "a short name shadows another name"
    assert all(registry.by_kind(k).namespaced for k in kinds.ALL_KINDS if k in registered)


def test_api_resources_table() -> None:
    code, text = run("api-resources")
    assert code == 0
    header, *rows = text.splitlines()
    assert header.split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["instances"] == [
        "instances",
        "inst",
        "skybroker.io/v1alpha1",
        "true",
        "Instance",
    ]
    assert by_name["pools"] == ["pools", "skybroker.io/v1alpha1", "false", "Pool"]
    assert len(rows) == len(registry.all_kinds())
    assert all(row.index("skybroker.io/") == header.index("APIVERSION") for row in rows)
    _, names = run("api-resources", "--namespaced=false", "-o", "name")
    assert "pools" in names.split() and "instances" not in names.split()


def test_bad_output_formats_are_usage_errors_that_say_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad, message in (
        ("toml", "use one of wide, yaml, json, name, jsonpath=TEMPLATE"),
        ("jsonpath={.a[", "jsonpath: unclosed"),
        ("custom-columns=NAME", "is not HEADER:PATH"),
    ):
        assert run("get", "instances", "-o", bad)[0] == 2
        assert message in capsys.readouterr().err, bad
    assert parse_output("custom-columns=N:{.metadata.name}").columns[0][0] == "N"


def event(name: str, message: str) -> dict:
    now = datetime.now(UTC).isoformat()
    return {
        "kind": "Event",
        "metadata": {"name": name, "namespace": "acme", "creationTimestamp": now},
        "type": "Warning",
        "reason": "Failed",
        "involvedObject": {"kind": "Instance", "name": "web-1"},
        "message": message,
        "lastTimestamp": now,
    }


def test_event_messages_are_cut_to_the_terminal_but_not_in_wide_or_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    info = registry.by_kind("Event")
    events = [event("e1", "m" * 300), event("e2", "short")]
    lines = format_groups([(info, events)], Output(), namespaces=False).splitlines()
    assert lines[0].split() == ["LAST-SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert all(len(line) <= 100 for line in lines) and lines[1].endswith("m…")
    assert lines[2].endswith("short")  # not padded to the longest message
    wide = format_groups([(info, events)], Output("wide"), namespaces=False)
    assert "m" * 300 in wide
    monkeypatch.delenv("COLUMNS")  # and stdout is pytest's capture, not a terminal: a pipe
    assert "m" * 300 in format_groups([(info, events)], Output(), namespaces=False)


def instance(name: str, phase: str, account: str | None = None) -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "namespace": "acme", "labels": {"app": "web"}},
        "spec": {"pool": "general"},
        "status": {"phase": phase, "placement": {"account": account} if account else {}},
    }


def test_streamed_rows_keep_the_columns_of_the_first_table() -> None:
    info = registry.by_kind("Instance")
    printer = StreamPrinter(info, Output(), namespaces=False, typed=False, labels=True)
    header, first = printer.first([instance("web-1", "Pending")]).splitlines()
    # Each cell of a later row is narrower than its column, but not as wide as the first's.
    later = printer.event("MODIFIED", instance("web-1", "Up", "sim-a")).rstrip("\n")
    gone = printer.event("DELETED", instance("web-1", "Up", "sim-a")).rstrip("\n")
    for column in ("PHASE", "ACCOUNT", "AGE", "LABELS"):
        at = header.index(column)
        assert first[at - 1] == later[at - 1] == " " and later[at] != " ", (column, later)
    assert gone.startswith(later) and gone.endswith("(deleted)")
    typed = StreamPrinter(info, Output(), namespaces=False, typed=True)
    top, row = typed.first([instance("web-1", "Pending")]).splitlines()
    deleted = typed.event("DELETED", instance("web-1", "Pending"))
    assert top.split()[:2] == ["EVENT", "NAME"] and row.split()[0] == "ADDED"
    assert deleted.index("web-1") == top.index("NAME")
    empty = StreamPrinter(info, Output(), namespaces=False, typed=False)
    top = empty.first([])
    row = empty.event("ADDED", instance("web-1", "Provisioning", "sim-east"))
    assert all(row.index(value) == top.index(column) for value, column in (
        ("general", "POOL"), ("Provisioning", "PHASE"), ("sim-east", "ACCOUNT")))  # fmt: skip
    as_names = StreamPrinter(info, parse_output("jsonpath={.metadata.name}{'\\n'}"), False, False)
    assert as_names.first([instance("a", "Pending"), instance("b", "Pending")]) == "a\nb\n"


def test_explain_takes_short_names_and_refuses_unknown_kinds_as_usage_errors() -> None:
    code, text = run("explain", "inst.spec.pool")
    assert code == 0 and text.startswith("KIND:     Instance\n")
    assert run("explain", "spaceship")[0] == 2  # was an uncaught UnknownKindError traceback


def test_version_client_needs_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "absent.yaml"))
    code, text = run("version", "--client")
    assert code == 0 and text.startswith("Client Version: ") and len(text.splitlines()) == 1
