"""Secret.folded(): the one stringData folding, used by apply to compare with what is stored."""

from __future__ import annotations

import base64

from api_types import Secret
from controller.apply.manifests import Manifest
from skyctl.apply import decide, prepare


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_folded_merges_string_data_over_data_in_a_copy() -> None:
    secret = Secret.model_validate(
        {
            "metadata": {"name": "creds", "namespace": "ns"},
            "data": {"key": b64("k"), "secret": b64("old")},
            "stringData": {"secret": "new", "region": "é"},
        }
    )
    folded = secret.folded()
    assert folded.data == {"key": b64("k"), "secret": b64("new"), "region": b64("é")}
    assert folded.string_data == {}
    assert folded.decoded() == secret.decoded()
    # the original is untouched, and the copy shares no mutable state with it
    assert secret.string_data == {"secret": "new", "region": "é"}
    folded.metadata.labels["x"] = "y"
    assert secret.metadata.labels == {}


def test_apply_compares_a_string_data_manifest_with_the_folded_live_secret() -> None:
    manifest = {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "ns"},
        "stringData": {"key": "k", "secret": "s"},
    }
    target = prepare(Manifest("test", manifest), "default", None)
    assert target.desired["data"] == {"key": b64("k"), "secret": b64("s")}
    assert not target.desired.get("stringData")
    live = {
        **target.desired,
        "metadata": {**target.desired["metadata"], "uid": "u", "resourceVersion": "3"},
    }
    assert decide(target, live) == ("unchanged", None)
    live["data"] = {"key": b64("k"), "secret": b64("other")}
    action, merged = decide(target, live)
    assert action == "configured" and merged is not None
    assert merged["data"]["secret"] == b64("s")
