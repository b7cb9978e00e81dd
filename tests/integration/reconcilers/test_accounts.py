"""The account registry: one shared provider per account version, credentials from Secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_types import ProviderAccount, registry
from controller.errors import TerminalError
from controller.store.objects import Store
from reconcilers.accounts import ProviderRegistry


def account(name: str, **spec: object) -> ProviderAccount:
    obj = registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "ProviderAccount",
            "metadata": {
                "name": name,
                "annotations": {"options.skybroker.io/boot_seconds": "0"},
            },
            "spec": {"driver": "simulated", "region": "sim-east", **spec},
        }
    )
    assert isinstance(obj, ProviderAccount)
    return obj


def test_one_provider_per_account_version(store: Store, tmp_path: Path) -> None:
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path)
    stored = store.create(account("sim-a"))
    first = providers.handle(stored)
    assert providers.handle(stored) is first
    assert first.provider.list_zones()
    assert (tmp_path / "simulated.sqlite").exists()
    stored.spec.images = {"ubuntu": "img-ubuntu-22.04"}
    changed = store.update(stored)
    assert providers.handle(changed) is not first


def test_credentials_come_from_the_secret(store: Store, tmp_path: Path) -> None:
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path)
    needs_secret = store.create(
        account("sim-b", credentialsRef={"namespace": "skybroker-system", "name": "sim-b"})
    )
    with pytest.raises(TerminalError) as err:
        providers.handle(needs_secret)
    assert err.value.reason == "CredentialsMissing"
    store.create(
        registry.parse_object(
            {
                "apiVersion": "skybroker.io/v1alpha1",
                "kind": "Secret",
                "metadata": {"name": "sim-b", "namespace": "skybroker-system"},
                "stringData": {"key": "AKIA", "secret": "s3cr3t"},
            }
        )
    )
    assert providers.handle(needs_secret).provider.list_zones()


def test_unknown_driver_is_terminal(store: Store, tmp_path: Path) -> None:
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path)
    stored = store.create(account("odd").model_copy(update={}))
    stored.spec.driver = "nimbus"
    with pytest.raises(TerminalError) as err:
        providers.handle(store.update(stored))
    assert err.value.reason == "InvalidAccount"
