"""The verbs that change one object in place: ``patch``, ``label``, ``annotate``, ``edit``.

Where it sits: beside ``skyctl.commands`` (same :class:`Session`, same exit codes), on
either backend — the REST API or the ``--etcd`` admin mode, which runs the API server's own
operations, so validation and admission are the same. Like kubectl:

- ``patch KIND/NAME --type merge -p JSON``: a JSON merge patch (RFC 7386), validated by the
  server as an update; ``patched (no change)`` when nothing moved;
- ``patch KIND/NAME --type json -p '[{"op": …}]'``: a JSON patch (RFC 6902,
  ``skyctl.jsonpatch``) applied to the object as read and written back with that
  read's resourceVersion as the precondition (re-read and re-applied on a conflict). A patch
  that is malformed or whose operation cannot apply (a ``test`` that fails, a path that does
  not exist) names the operation's index: a usage error (2) for a malformed one, 1 otherwise;
- ``label`` / ``annotate KIND/NAME k=v k2-``: set or remove keys; changing a key that already
  holds another value needs ``--overwrite``. The patch carries the resourceVersion the check
  was made against, so a concurrent writer makes it re-read and check again (never a blind
  overwrite);
- ``edit KIND/NAME``: the object as YAML in ``$EDITOR`` (else ``vi``); saved unchanged, nothing
  is written; else it is written with the resourceVersion it was read at as the precondition,
  so a change made meanwhile is a conflict, reported with the path of a copy of the edits.

A refusal (``--overwrite`` missing, an edit that renames the object or does not parse, the
editor failing) is :class:`EditError`: exit 1, like an API error.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from api_types.registry import KindInfo
from controller.apply.manifests import ManifestError, load_manifests
from controller.errors import SkybrokerError
from skyctl.apply import resource_ref
from skyctl.backend import ApiError
from skyctl.commands import Session, UsageError, kind_and_names
from skyctl.jsonpatch import JsonPatchError, apply_json_patch, check_json_patch

__all__ = ["VERBS", "EditError"]

Wire = dict[str, Any]

_CONFLICT_RETRIES = 5
_EDIT_HEADER = """\
# Edit the object below and save to apply it; save it unchanged to cancel.
# Lines starting with '#' are ignored. status and the server's metadata are not written.
"""


class EditError(SkybrokerError, ValueError):
    """The change cannot be made as asked (exit code 1)."""


def _one_object(args: argparse.Namespace, verb: str) -> tuple[KindInfo, str]:
    info, names = kind_and_names(args.kind, args.names)
    if len(names) != 1:
        raise UsageError(f"{verb} needs exactly one object: KIND/NAME or KIND NAME")
    return info, names[0]


def _version(obj: Wire) -> Any:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _suffix(before: Wire, after: Wire, dry_run: bool) -> str:
    """How a write went: the server answers with the stored object when nothing changed."""
    if dry_run:
        return " (dry run)"
    return "" if _version(before) != _version(after) else " (no change)"


def _json_patched(session: Session, info: KindInfo, name: str, patch: Any, dry_run: bool) -> str:
    """Apply a JSON patch to the object as read and write it with that read's version as the
    precondition, again on a conflict; the outcome's suffix."""
    operations = check_json_patch(patch)
    namespace = session.namespace_for(info)
    for _ in range(_CONFLICT_RETRIES):
        live = session.backend.get(info, namespace, name)
        try:
            patched = apply_json_patch(live, operations)
        except JsonPatchError as exc:
            raise EditError(f"{resource_ref(info, name)}: {exc}") from None
        if not isinstance(patched, dict):
            raise EditError(f"{resource_ref(info, name)}: the patch must leave an object")
        if patched == live:
            return " (dry run)" if dry_run else " (no change)"
        patched.setdefault("metadata", {})["resourceVersion"] = _version(live)
        try:
            written = session.backend.update(patched, dry_run=dry_run)
        except ApiError as exc:
            if exc.conflict:  # written in between: apply the patch to the new version
                continue
            raise
        return _suffix(live, written, dry_run)
    raise ApiError(409, "Conflict", f"{resource_ref(info, name)}: kept changing; retry")


def cmd_patch(session: Session, args: argparse.Namespace) -> int:
    info, name = _one_object(args, "patch")
    try:
        patch = json.loads(args.patch)
    except ValueError as exc:
        raise UsageError(f"--patch is not valid JSON: {exc}") from None
    dry_run = args.dry_run is not None
    if args.type == "json":
        try:
            suffix = _json_patched(session, info, name, patch, dry_run)
        except JsonPatchError as exc:
            raise UsageError(f"--patch: {exc}") from None
    else:
        if not isinstance(patch, dict):
            raise UsageError("--patch must be a JSON object (a merge patch)")
        namespace = session.namespace_for(info)
        before = session.backend.get(info, namespace, name)
        after = session.backend.patch(info, namespace, name, patch, dry_run=dry_run)
        suffix = _suffix(before, after, dry_run)
    session.say(f"{resource_ref(info, name)} patched{suffix}")
    return 0


def _changes(words: list[str], what: str) -> tuple[list[str], dict[str, str | None]]:
    """Split ``NAME… k=v… k-…`` into names and changes (None = remove)."""
    names: list[str] = []
    changes: dict[str, str | None] = {}
    for word in words:
        value: str | None
        if "=" in word:
            key, _, value = word.partition("=")
        elif word.endswith("-") and len(word) > 1:
            key, value = word[:-1], None
        else:
            names.append(word)
            continue
        if not key:
            raise UsageError(f"{what} {word!r}: the key is empty")
        if key in changes and changes[key] != value:
            raise UsageError(f"{what} {key!r} is both set and removed, or set twice")
        changes[key] = value
    if not changes:
        raise UsageError(f"at least one {what} change is needed: KEY=VALUE or KEY-")
    return names, changes


def _change_map(
    session: Session,
    info: KindInfo,
    name: str,
    field: str,
    changes: dict[str, str | None],
    *,
    overwrite: bool,
    dry_run: bool,
) -> bool:
    """Apply ``changes`` to ``metadata.<field>``; False when there was nothing to change."""
    namespace = session.namespace_for(info)
    for _ in range(_CONFLICT_RETRIES):
        live = session.backend.get(info, namespace, name)
        metadata = live.get("metadata") or {}
        current: dict[str, str] = metadata.get(field) or {}
        wanted: dict[str, str | None] = {}
        for key, value in changes.items():
            if value is None:
                if key in current:
                    wanted[key] = None
                else:
                    session.err.write(f"{field[:-1]} {key!r} not found on {name}.\n")
            elif current.get(key) != value:
                if key in current and not overwrite:
                    raise EditError(
                        f"{resource_ref(info, name)}: {field[:-1]} {key!r} already has a value "
                        f"({current[key]}), and --overwrite is false"
                    )
                wanted[key] = value
        if not wanted:
            return False
        patch = {"metadata": {field: wanted, "resourceVersion": _version(live)}}
        try:
            session.backend.patch(info, namespace, name, patch, dry_run=dry_run)
            return True
        except ApiError as exc:
            if not exc.conflict:  # a writer came in between: read and check again
                raise
    raise ApiError(409, "Conflict", f"{resource_ref(info, name)}: kept changing; retry")


def _metadata_verb(field: str, done: str) -> Callable[[Session, argparse.Namespace], int]:
    what = field[:-1]  # "label", "annotation"

    def command(session: Session, args: argparse.Namespace) -> int:
        info, names = kind_and_names(args.kind, [])
        more, changes = _changes(args.changes, what)
        names += more
        if not names:
            raise UsageError(f"which object? KIND/NAME or KIND NAME, then the {what} changes")
        dry_run = args.dry_run is not None
        suffix = " (dry run)" if dry_run else ""
        for name in names:
            changed = _change_map(
                session,
                info,
                name,
                field,
                changes,
                overwrite=args.overwrite,
                dry_run=dry_run,
            )
            session.say(f"{resource_ref(info, name)} {done if changed else 'not ' + done}{suffix}")
        return 0

    return command


def _run_editor(path: Path) -> None:
    editor = os.environ.get("EDITOR") or "vi"
    try:
        finished = subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise EditError(f"cannot run the editor {editor!r} ($EDITOR): {exc.strerror}") from None
    if finished.returncode != 0:
        raise EditError(f"the editor {editor!r} exited with status {finished.returncode}")


def _read_edited(path: Path) -> Wire:
    manifests = load_manifests([str(path)])
    if len(manifests) != 1:
        raise ManifestError(f"{path}: holds {len(manifests)} objects; keep exactly the one edited")
    return manifests[0].obj


def _identity(obj: Wire) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return {
        "kind": obj.get("kind"),
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
    }


def _check_identity(live: Wire, edited: Wire) -> None:
    """An edit changes one object; renaming it would write another."""
    was, now = _identity(live), _identity(edited)
    for field, value in was.items():
        if now[field] != value:
            raise EditError(f"{field} cannot be changed by edit (it was {value!r})")


def cmd_edit(session: Session, args: argparse.Namespace) -> int:
    info, name = _one_object(args, "edit")
    live = session.backend.get(info, session.namespace_for(info), name)
    ref = resource_ref(info, name)
    handle, filename = tempfile.mkstemp(prefix=f"skyctl-edit-{info.plural}-{name}-", suffix=".yaml")
    path = Path(filename)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(_EDIT_HEADER + yaml.safe_dump(live, sort_keys=False, allow_unicode=True))
    keep = f"; your changes are saved in {path}"
    try:
        _run_editor(path)
        edited = _read_edited(path)
        if edited == live:
            path.unlink()
            session.err.write("Edit cancelled, no changes made.\n")
            return 0
        _check_identity(live, edited)
    except (EditError, ManifestError) as exc:
        raise EditError(f"{ref}: {exc}{keep}") from None
    # The revision it was read at, whatever the file says: a change made meanwhile conflicts.
    edited["metadata"]["resourceVersion"] = _version(live)
    try:
        written = session.backend.update(edited, dry_run=False)
    except ApiError as exc:
        problem = (
            "the object was changed by someone else while you edited it, so nothing was "
            "written; run skyctl edit again to start from the new version"
            if exc.conflict
            else exc.message
        )
        exc.message = f"{ref}: {problem}{keep}"
        raise
    path.unlink()
    session.say(f"{ref} edited{_suffix(live, written, False)}")
    return 0


VERBS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "patch": cmd_patch,
    "label": _metadata_verb("labels", "labeled"),
    "annotate": _metadata_verb("annotations", "annotated"),
    "edit": cmd_edit,
}
