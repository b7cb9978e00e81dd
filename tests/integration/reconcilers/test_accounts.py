"""The account registry: one shared provider per account version, credentials from Secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_types import ProviderAccount, Secret, registry
from controller.clock import FakeClock
from controller.errors import TerminalError
from controller.store.objects import Store
from providers.simulated import SimulatedProvider
from reconcilers.accounts import CATALOGUE_TTL, CREDENTIALS_SECONDS, ProviderRegistry


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


def test_the_catalogue_is_listed_once_per_ttl_on_the_registry_clock(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path, clock=clock)
    stored = store.create(account("sim-a", images={"ubuntu": "img-ubuntu-2204"}))
    catalogue = providers.handle(stored).catalogue
    offer = catalogue.offer()
    assert offer.zones and offer.sizes
    arch = catalogue.image_arch()
    clock.set(CATALOGUE_TTL - 0.1)
    assert catalogue.offer() is offer and catalogue.image_arch() is arch
    clock.set(CATALOGUE_TTL + 0.1)
    assert catalogue.offer() is not offer and catalogue.offer() == offer
    assert catalogue.image_arch() is not arch


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


def test_a_rotated_secret_is_used_after_at_most_credentials_seconds(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path, clock=clock)
    ref = {"namespace": "skybroker-system", "name": "sim-c"}
    secret = store.create(
        registry.parse_object(
            {
                "apiVersion": "skybroker.io/v1alpha1",
                "kind": "Secret",
                "metadata": {"name": "sim-c", "namespace": "skybroker-system"},
                "stringData": {"key": "AKIA-1", "secret": "one"},
            }
        )
    )
    stored = store.create(account("sim-c", credentialsRef=ref))
    first = providers.handle(stored)
    assert isinstance(secret, Secret)
    secret.string_data = {"key": "AKIA-2", "secret": "two"}
    rotated = store.update(secret.folded())
    clock.set(CREDENTIALS_SECONDS - 0.1)  # not read again yet: no etcd read per reconcile
    assert providers.handle(stored) is first
    clock.set(CREDENTIALS_SECONDS + 0.1)
    second = providers.handle(stored)
    assert second is not first
    assert second.version[2] == rotated.metadata.resource_version


def test_unknown_driver_is_terminal(store: Store, tmp_path: Path) -> None:
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path)
    stored = store.create(account("odd").model_copy(update={}))
    stored.spec.driver = "nimbus"
    with pytest.raises(TerminalError) as err:
        providers.handle(store.update(stored))
    assert err.value.reason == "InvalidAccount"


def test_the_boot_agents_option_reaches_the_driver_and_providers_are_closed(
    store: Store, tmp_path: Path
) -> None:
    """``options.skybroker.io/boot-agents`` turns the simulated cloud's agent supervisor on; a
    replaced provider (new account version) is closed, and ``close`` closes the rest."""
    providers = ProviderRegistry(store, simulated_state_dir=tmp_path)
    obj = account("sim-agents")
    obj.metadata.annotations["options.skybroker.io/boot-agents"] = "true"
    stored = store.create(obj)
    first = providers.handle(stored).provider.inner
    assert isinstance(first, SimulatedProvider) and first.boot_agents is not None
    stored.spec.images = {"ubuntu": "img-ubuntu-22.04"}
    second = providers.handle(store.update(stored)).provider.inner
    assert isinstance(second, SimulatedProvider) and second.boot_agents is not None
    assert first.boot_agents.closed and not second.boot_agents.closed
    providers.close()
    assert second.boot_agents.closed
