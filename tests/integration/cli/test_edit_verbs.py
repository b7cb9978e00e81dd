"""``patch``, ``label``, ``annotate`` and ``edit`` through the REST API and in the ``--etcd`` admin
mode alike (``any_backend``): same outcomes, same validation, same exit codes.

``edit`` runs a real editor process: ``$EDITOR`` is a small Python script that rewrites the file
(and, for the conflict, runs a real skyctl write in between).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from api_types import Instance
from controller.store.etcd import EtcdClient
from controller.store.objects import Store
from tests.etcd_writes import key_revisions
from tests.integration.cli.helpers import Skyctl, write_manifest

EDITOR = """\
import json, subprocess, sys
path, old, new = sys.argv[-1], sys.argv[1], sys.argv[2]
with open(path) as f:
    text = f.read()
with open(path, "w") as f:
    f.write(text.replace(old, new))
if len(sys.argv) > 4:  # a command to run meanwhile, as JSON argv
    subprocess.run(json.loads(sys.argv[3]), check=True)
"""


@pytest.fixture
def skyctl(any_backend: Skyctl, tmp_path: Path) -> Skyctl:
    applied = any_backend("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    assert applied.code == 0, applied.err
    return any_backend


def web(store: Store) -> Instance:
    return store.get(Instance, "web-1", "acme")


def editor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> None:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    quoted = " ".join(f"'{a}'" for a in args)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script} {quoted}")


def test_patch_merges_validates_and_reports_no_change(skyctl: Skyctl, store: Store) -> None:
    patch = '{"spec": {"image": "debian-12"}, "metadata": {"labels": {"tier": "front"}}}'
    done = skyctl("patch", "instance/web-1", "-n", "acme", "--type", "merge", "-p", patch)
    assert (done.code, done.out) == (0, "instance.skybroker.io/web-1 patched\n"), done.err
    assert web(store).spec.image == "debian-12"
    assert web(store).metadata.labels == {"app": "web", "tier": "front"}
    assert web(store).metadata.generation == 2
    again = skyctl("patch", "instance", "web-1", "-n", "acme", "-p", patch)
    assert again.out == "instance.skybroker.io/web-1 patched (no change)\n"
    removed = skyctl(
        "patch", "instance/web-1", "-n", "acme", "-p", '{"metadata": {"labels": {"tier": null}}}'
    )
    assert removed.code == 0 and web(store).metadata.labels == {"app": "web"}

    invalid = skyctl(
        "patch", "instance/web-1", "-n", "acme", "-p", '{"spec": {"powerState": "Sideways"}}'
    )
    assert invalid.code == 1 and "spec.powerState" in invalid.err, invalid.err
    denied = skyctl("patch", "instance/web-1", "-n", "acme", "-p", '{"spec": {"pool": "nowhere"}}')
    assert denied.code == 1 and "spec.pool" in denied.err and "nowhere" in denied.err
    assert web(store).spec.pool == "general"
    dry = skyctl(
        "patch",
        "instance/web-1",
        "-n",
        "acme",
        "--dry-run",
        "-p",
        '{"spec": {"image": "ubuntu-22.04"}}',
    )
    assert dry.out.endswith("patched (dry run)\n") and web(store).spec.image == "debian-12"
    missing = skyctl("patch", "instance/nope", "-n", "acme", "-p", "{}")
    assert missing.code == 1 and "not found" in missing.err
    for bad in ("{not json", "[1]"):
        usage = skyctl("patch", "instance/web-1", "-n", "acme", "-p", bad)
        assert usage.code == 2 and "--patch" in usage.err


def test_label_needs_overwrite_to_change_a_value(skyctl: Skyctl, store: Store) -> None:
    added = skyctl("label", "instance/web-1", "-n", "acme", "tier=db", "zone=a")
    assert (added.code, added.out) == (0, "instance.skybroker.io/web-1 labeled\n"), added.err
    assert web(store).metadata.labels == {"app": "web", "tier": "db", "zone": "a"}
    version = web(store).metadata.resource_version

    refused = skyctl("label", "instance/web-1", "-n", "acme", "app=db")
    assert refused.code == 1
    assert "'app' already has a value (web), and --overwrite is false" in refused.err
    assert web(store).metadata.resource_version == version  # nothing written
    same = skyctl("label", "instance/web-1", "-n", "acme", "app=web")
    assert same.code == 0 and same.out == "instance.skybroker.io/web-1 not labeled\n"

    changed = skyctl("label", "instance", "web-1", "-n", "acme", "app=db", "zone-", "--overwrite")
    assert changed.code == 0, changed.err
    assert web(store).metadata.labels == {"app": "db", "tier": "db"}
    absent = skyctl("label", "instance/web-1", "-n", "acme", "zone-")
    assert absent.code == 0 and "label 'zone' not found" in absent.err
    assert absent.out.endswith("not labeled\n")

    invalid = skyctl("label", "instance/web-1", "-n", "acme", "bad=***")
    assert invalid.code == 1 and "metadata.labels" in invalid.err, invalid.err
    for usage in (("instance/web-1",), ("instance/web-1", "a=1", "a-"), ("instance", "a=1")):
        assert skyctl("label", *usage, "-n", "acme").code == 2


def test_annotate_likewise(skyctl: Skyctl, store: Store) -> None:
    done = skyctl("annotate", "instance/web-1", "-n", "acme", "note=hello world")
    assert done.code == 0 and done.out == "instance.skybroker.io/web-1 annotated\n", done.err
    assert web(store).metadata.annotations["note"] == "hello world"
    refused = skyctl("annotate", "instance/web-1", "-n", "acme", "note=other")
    assert refused.code == 1 and "'note' already has a value" in refused.err
    assert skyctl("annotate", "instance/web-1", "-n", "acme", "note=other", "--overwrite").code == 0
    assert web(store).metadata.annotations["note"] == "other"
    assert skyctl("annotate", "instance/web-1", "-n", "acme", "note-").code == 0
    assert "note" not in web(store).metadata.annotations
    # a cluster-scoped kind
    assert skyctl("annotate", "hardwareprofile/small-a", "owner=ops").code == 0


def test_edit_writes_the_change_and_an_unchanged_file_writes_nothing(
    skyctl: Skyctl,
    store: Store,
    etcd_client: EtcdClient,
    key_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDITOR", "true")
    written = key_revisions(etcd_client, key_prefix)
    unchanged = skyctl("edit", "instance/web-1", "-n", "acme")
    assert unchanged.code == 0 and "Edit cancelled, no changes made." in unchanged.err
    assert key_revisions(etcd_client, key_prefix) == written

    editor(monkeypatch, tmp_path, "ubuntu-22.04", "debian-12")
    edited = skyctl("edit", "instance/web-1", "-n", "acme")
    assert (edited.code, edited.out) == (0, "instance.skybroker.io/web-1 edited\n"), edited.err
    assert web(store).spec.image == "debian-12"
    assert list(tmp_path.glob("skyctl-edit-*")) == []


def _saved_copy(err: str) -> Path:
    path = Path(err.rsplit("your changes are saved in ", 1)[1].split()[0])
    assert path.exists()
    return path


def test_edit_conflict_invalid_rename_and_a_failing_editor_write_nothing(
    skyctl: Skyctl, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meanwhile = [
        sys.executable,
        "-m",
        "skyctl",
        "annotate",
        "instance/web-1",
        "-n",
        "acme",
        "meanwhile=yes",
        *skyctl.connection,
    ]
    editor(monkeypatch, tmp_path, "ubuntu-22.04", "debian-12", json.dumps(meanwhile), "run")
    conflict = skyctl("edit", "instance/web-1", "-n", "acme")
    assert conflict.code == 1
    assert "changed by someone else while you edited it" in conflict.err, conflict.err
    saved = _saved_copy(conflict.err)
    assert "debian-12" in saved.read_text()
    saved.unlink()
    assert web(store).spec.image == "ubuntu-22.04"
    assert web(store).metadata.annotations["meanwhile"] == "yes"

    editor(monkeypatch, tmp_path, "powerState: Running", "powerState: Sideways")
    invalid = skyctl("edit", "instance/web-1", "-n", "acme")
    assert invalid.code == 1 and "spec.powerState" in invalid.err, invalid.err
    _saved_copy(invalid.err).unlink()

    editor(monkeypatch, tmp_path, "name: web-1", "name: web-2")
    renamed = skyctl("edit", "instance/web-1", "-n", "acme")
    assert renamed.code == 1 and "metadata.name cannot be changed" in renamed.err
    _saved_copy(renamed.err).unlink()

    monkeypatch.setenv("EDITOR", "false")
    failed = skyctl("edit", "instance/web-1", "-n", "acme")
    assert failed.code == 1 and "exited with status 1" in failed.err
    _saved_copy(failed.err).unlink()
    assert web(store).spec.image == "ubuntu-22.04"
