"""Fetch: a GitSource's URL and ref → a revision, its objects cached, its manifests read.

Where it sits in the GitOps pipeline: GitSource reconciler → **fetch** → decode/plan → apply.
The reconciler asks :func:`remote_revision` (or calls :func:`fetch` directly) every interval;
decode/plan reads :meth:`Checkout.manifests`. Everything is dulwich, pure Python: no git
binary, no working tree (blobs are read from the object store).

Costs, by design (a converged GitSource polls forever):

- :func:`remote_revision` is one ref lookup (``ls-remote``) and nothing else;
- :func:`fetch` of a ref whose commit is already cached is that one lookup too — the ref
  advertisement that opens the fetch — with no pack requested and nothing written; a changed
  ref adds one pack exchange carrying only the missing objects;
- a force-pushed branch is followed (the cache simply moves its ref; the old objects stay until
  the cache is removed);
- a commit ref cannot be asked for by sha (servers refuse unadvertised wants by default), so
  the branches and tags are fetched until it is found among them.

The cache is one bare repository per URL under ``cache_dir`` (named by a hash of the URL, so
two GitSources on one repository share it), guarded by a file lock so concurrent fetches of
one URL — threads or processes — take turns.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dulwich.client import LocalGitClient
from dulwich.errors import NotGitRepository
from dulwich.object_store import peel_sha
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from api_types.gitops import GitRef
from reconcilers.gitsource.errors import ManifestLimitExceeded, PathNotFound, RefNotFound
from reconcilers.gitsource.transport import Credentials, display_url, open_client, typed_errors

__all__ = [
    "MANIFEST_SUFFIXES",
    "Checkout",
    "ManifestLimits",
    "Revision",
    "cache_path",
    "describe_ref",
    "fetch",
    "remote_revision",
]

#: Files read as manifests (YAML, possibly multi-document, or JSON).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_PEELED = b"^{}"
_REVISION = re.compile(r"(?:(?P<name>.+)@)?sha1:(?P<sha>[0-9a-f]{40})")


@dataclass(frozen=True)
class Revision:
    """A resolved ref: ``main@sha1:<hex>`` (branch), ``v1.2.0@sha1:<hex>`` (tag, the commit it
    points at) or ``sha1:<hex>`` (commit), as DESIGN §9 writes revisions in status."""

    name: str | None
    sha: str

    def __str__(self) -> str:
        return f"sha1:{self.sha}" if self.name is None else f"{self.name}@sha1:{self.sha}"

    @classmethod
    def parse(cls, text: str) -> Revision:
        match = _REVISION.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a revision like main@sha1:<40 hex>")
        return cls(match["name"], match["sha"])


@dataclass(frozen=True)
class ManifestLimits:
    """What one revision may hold under ``path``: beyond this, nothing is read or applied."""

    max_file_bytes: int = 1024 * 1024
    max_files: int = 10_000
    max_total_bytes: int = 64 * 1024 * 1024


def describe_ref(ref: GitRef) -> str:
    """``branch main``, ``tag v1.2.0`` or ``commit <sha>``: how messages name a ref."""
    if ref.branch is not None:
        return f"branch {ref.branch}"
    if ref.tag is not None:
        return f"tag {ref.tag}"
    return f"commit {ref.commit}"


def _ref_name(ref: GitRef) -> Ref | None:
    if ref.branch is not None:
        return Ref(b"refs/heads/" + ref.branch.encode())
    if ref.tag is not None:
        return Ref(b"refs/tags/" + ref.tag.encode())
    return None


def _revision(ref: GitRef, commit: bytes) -> Revision:
    return Revision(ref.branch or ref.tag, commit.decode("ascii"))


def remote_revision(url: str, ref: GitRef, credentials: Credentials | None = None) -> Revision:
    """The revision ``ref`` has on the server now: one ref lookup, nothing fetched or written.

    A commit ref resolves to itself; the lookup still proves the repository is reachable.
    """
    described = describe_ref(ref)
    name = _ref_name(ref)
    with (
        typed_errors(url, described, credentials),
        open_client(url, described, credentials) as (client, path),
    ):
        listing = client.get_refs(path, ref_prefix=[name or Ref(b"HEAD")])
        if ref.commit is not None:
            return Revision(None, ref.commit)
        assert name is not None
        sha = listing.refs.get(Ref(name + _PEELED)) or listing.refs.get(name)
        if sha is None:
            raise RefNotFound(display_url(url), described, "no such ref on the server")
        if isinstance(client, LocalGitClient):  # a local listing carries no peeled tags
            with Repo(path.decode()) as repo:
                sha = peel_sha(repo.object_store, sha)[1].id
        return _revision(ref, sha)


def cache_path(cache_dir: Path, url: str) -> Path:
    """The bare cache repository of ``url`` under ``cache_dir``."""
    return cache_dir / hashlib.sha256(url.encode()).hexdigest()[:32]


@contextmanager
def _cache_repository(cache_dir: Path, url: str) -> Iterator[Repo]:
    """The cache repository of ``url``, locked while the block runs; created on first use, and
    created afresh when a process died while creating it (it is only a cache)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(cache_dir, url)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            repo = Repo(str(path))
        except NotGitRepository:
            shutil.rmtree(path, ignore_errors=True)
            repo = Repo.init_bare(str(path), mkdir=True)
        with repo:
            yield repo


def fetch(url: str, ref: GitRef, credentials: Credentials | None, cache_dir: Path) -> Checkout:
    """Bring ``ref``'s commit into the cache of ``url`` (fetching only what is missing) and
    return it checked out — in the object store, no working tree."""
    described = describe_ref(ref)
    name = _ref_name(ref)
    with _cache_repository(cache_dir, url) as repo:
        advertised: dict[Ref, ObjectID] = {}
        pinned = None if ref.commit is None else ObjectID(ref.commit.encode())

        def determine_wants(
            refs: Mapping[Ref, ObjectID | None], depth: int | None = None
        ) -> list[ObjectID]:
            advertised.update(_wanted_refs(refs, name))
            if pinned is not None and pinned in repo.object_store:
                return []  # a commit never changes: once cached, nothing more is needed
            return sorted({sha for sha in advertised.values() if sha not in repo.object_store})

        with (
            typed_errors(url, described, credentials),
            open_client(url, described, credentials) as (client, path),
        ):
            client.fetch(path, repo, determine_wants=determine_wants, ref_prefix=_prefixes(name))
        for ref_name, sha in advertised.items():
            # an unchanged ref writes nothing; one whose objects were not fetched is not kept
            if sha in repo.object_store and repo.refs.read_ref(ref_name) != sha:
                repo.refs[ref_name] = sha
        commit = _resolve_commit(repo, ref, name, advertised, display_url(url), described)
        return Checkout(display_url(url), Path(repo.path), _revision(ref, commit))


_BRANCHES_AND_TAGS = (Ref(b"refs/heads/"), Ref(b"refs/tags/"))


def _prefixes(name: Ref | None) -> list[Ref]:
    return list(_BRANCHES_AND_TAGS) if name is None else [name]


def _wanted_refs(refs: Mapping[Ref, ObjectID | None], name: Ref | None) -> dict[Ref, ObjectID]:
    """The advertised refs to bring into the cache: ``name``, or every branch and tag for a
    commit ref (peeled ``^{}`` entries are not refs)."""
    return {
        ref_name: sha
        for ref_name, sha in refs.items()
        if sha is not None
        and not ref_name.endswith(_PEELED)
        and (ref_name == name if name is not None else ref_name.startswith(_BRANCHES_AND_TAGS))
    }


def _resolve_commit(
    repo: Repo,
    ref: GitRef,
    name: Ref | None,
    advertised: Mapping[Ref, ObjectID],
    url: str,
    described: str,
) -> bytes:
    if name is not None:
        if name not in advertised:
            raise RefNotFound(url, described, "no such ref on the server")
        target = peel_sha(repo.object_store, advertised[name])[1]
    else:
        assert ref.commit is not None
        sha = ObjectID(ref.commit.encode())
        if sha not in repo.object_store:
            raise RefNotFound(url, described, "the commit is on no branch or tag of the server")
        target = repo.object_store[sha]
    if not isinstance(target, Commit):
        raise RefNotFound(url, described, f"it names a {target.type_name.decode()}, not a commit")
    return target.id


@dataclass(frozen=True)
class Checkout:
    """One fetched commit of a repository, read straight from the cache's object store."""

    url: str
    repository: Path
    revision: Revision

    def manifests(
        self, path: str | None = None, limits: ManifestLimits = ManifestLimits()
    ) -> Iterator[tuple[str, bytes]]:
        """(file path relative to the repository root, content) of every ``*.yaml``, ``*.yml``
        and ``*.json`` under ``path`` (recursively; absent = the root), sorted by path.

        The file count is checked on the whole listing before the first file is yielded.
        Symbolic links and submodules are not followed: a manifest is a regular file.
        """
        where = str(self.revision)
        parts = [part for part in (path or "").split("/") if part not in ("", ".")]
        if ".." in parts:
            raise PathNotFound(self.url, where, f"{path}: a path must not contain '..'")
        with Repo(str(self.repository)) as repo:
            commit = repo.object_store[ObjectID(self.revision.sha.encode())]
            assert isinstance(commit, Commit)
            directory = commit.tree
            for depth, part in enumerate(parts):
                directory = _subtree(repo, directory, part)
                if directory is None:
                    shown = "/".join(parts[: depth + 1])
                    raise PathNotFound(self.url, where, f"{shown} is no directory at {where}")
            files = sorted(_manifest_files(repo, directory, "/".join(parts)))
            if len(files) > limits.max_files:
                raise ManifestLimitExceeded(
                    self.url,
                    where,
                    f"{len(files)} manifest files under {path or 'the root'}; "
                    f"the limit is {limits.max_files}",
                )
            total = 0
            for file_path, sha in files:
                data = repo.object_store[sha].as_raw_string()
                total += len(data)
                if len(data) > limits.max_file_bytes:
                    raise ManifestLimitExceeded(
                        self.url,
                        where,
                        f"{file_path} is {len(data)} bytes; the limit is {limits.max_file_bytes}",
                    )
                if total > limits.max_total_bytes:
                    raise ManifestLimitExceeded(
                        self.url,
                        where,
                        f"the manifests exceed {limits.max_total_bytes} bytes in all "
                        f"(at {file_path})",
                    )
                yield file_path, data


def _subtree(repo: Repo, tree_id: ObjectID, name: str) -> ObjectID | None:
    tree = repo.object_store[tree_id]
    assert isinstance(tree, Tree)
    for entry in tree.iteritems():
        if entry.path == name.encode() and stat.S_ISDIR(entry.mode):
            return entry.sha
    return None


def _manifest_files(repo: Repo, tree_id: ObjectID, prefix: str) -> Iterator[tuple[str, ObjectID]]:
    """(path from the repository root, blob id) of the manifest files in the tree, recursively."""
    pending = [(tree_id, prefix)]
    while pending:
        current, directory = pending.pop()
        tree = repo.object_store[current]
        assert isinstance(tree, Tree)
        for entry in tree.iteritems():
            name = entry.path.decode("utf-8", errors="replace")
            file_path = f"{directory}/{name}" if directory else name
            if stat.S_ISDIR(entry.mode):
                pending.append((entry.sha, file_path))
            elif stat.S_ISREG(entry.mode) and name.endswith(MANIFEST_SUFFIXES):
                yield file_path, entry.sha
