"""Decoding manifests: files, directories, stdin, or bytes read elsewhere (a git tree).

Where it sits: the first step of the apply engine (decode → prepare → plan → write → prune);
what it returns goes to :func:`controller.apply.prepare.prepare`. skyctl's ``apply``, ``diff``,
``create -f`` and ``delete -f`` read their sources with :func:`load_manifests`; the GitSource
reconciler decodes the files it fetched with :func:`decode_manifests`. A source is a file, a
directory (its ``.yaml``/``.yml``/``.json`` files in name order, and with ``recursive`` those
of its subdirectories too) or ``-`` for stdin. A file may hold several YAML documents
separated by ``---`` lines, and a document may be a ``kind: List`` whose ``items`` are the
objects (what ``skyctl get -o yaml`` prints for several objects).

Every document is decoded by the store's defensive decoder (``controller.store.codec``): YAML
anchors, aliases and merge keys as far as they expand by a bounded amount (so a "billion
laughs" document is refused before it expands), a size and a nesting-depth limit, a mapping
at the top of each document. Errors name the source and, through the YAML parser, the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from controller.errors import SkybrokerError
from controller.store.codec import MAX_VALUE_BYTES, DecodeError, decode_documents

__all__ = ["MAX_FILE_BYTES", "Manifest", "ManifestError", "decode_manifests", "load_manifests"]

#: Larger sources are refused without parsing.
MAX_FILE_BYTES = 16 * MAX_VALUE_BYTES
_EXTENSIONS = (".yaml", ".yml", ".json")


class ManifestError(SkybrokerError, ValueError):
    """A source cannot be read or a document in it is not a usable manifest."""


@dataclass(frozen=True)
class Manifest:
    """One document read from a file or stdin, with where it came from for messages."""

    source: str  # "path (document N)" for messages
    obj: dict[str, Any]
    #: The file it came from and its document number there (from 1), for a plan's failure.
    file: str = ""
    document: int = 0


def _files(path: Path, recursive: bool) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_dir():
                if recursive:
                    yield from _files(child, recursive)
            elif child.suffix in _EXTENSIONS:
                yield child
    elif path.exists():
        yield path
    else:
        raise ManifestError(f"{path}: no such file or directory")


def decode_manifests(source: str, raw: bytes) -> Iterator[Manifest]:
    """The objects of one file's bytes (``source`` names it in messages), a ``List``'s items
    one by one; :class:`ManifestError` for a document that cannot be decoded."""
    try:
        documents = decode_documents(raw, max_bytes=MAX_FILE_BYTES)
    except DecodeError as exc:
        raise ManifestError(f"{source}: {exc}") from None
    for number, obj in enumerate(documents, start=1):
        where = f"{source} (document {number})"
        if obj.get("kind") == "List":
            items = obj.get("items") or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ManifestError(f"{where}: a List needs a list of objects in items")
            yield from (
                Manifest(f"{where} item {i}", item, source, number) for i, item in enumerate(items)
            )
        else:
            yield Manifest(where, obj, source, number)


def load_manifests(
    sources: list[str], *, recursive: bool = False, stdin: IO[bytes] | None = None
) -> list[Manifest]:
    """Every object of ``sources``, in order; ``-`` reads ``stdin``."""
    manifests: list[Manifest] = []
    for source in sources:
        if source == "-":
            if stdin is None:
                raise ManifestError("-: no standard input")
            manifests.extend(decode_manifests("<stdin>", stdin.read(MAX_FILE_BYTES + 1)))
            continue
        for path in _files(Path(source), recursive):
            try:
                with path.open("rb") as handle:
                    raw = handle.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                raise ManifestError(f"{path}: {exc.strerror}") from None
            manifests.extend(decode_manifests(str(path), raw))
    return manifests
