"""Reading manifests for ``apply``, ``diff``, ``create -f`` and ``delete -f``: files,
directories, stdin — the apply engine's decoder (``controller.apply.manifests``), re-exported
for skyctl's verbs."""

from controller.apply.manifests import Manifest, ManifestError, load_manifests

__all__ = ["Manifest", "ManifestError", "load_manifests"]
