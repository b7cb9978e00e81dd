"""The fetch layer against real git servers: file://, git:// and smart HTTP (conftest).

What a GitSource relies on: a ref resolves to DESIGN's revision string; the first fetch brings
the commit into a per-URL cache; an unchanged ref costs one lookup and fetches and writes
nothing; new commits, force pushes, tags and commits are followed; failures are typed
(transient when unreachable, terminal for a missing ref or refused credentials) and name the
URL and the ref, never the password; manifests come out in a fixed order, within limits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api_types.gitops import GitRef
from controller.errors import TerminalError, TransientError
from reconcilers.gitsource import (
    AuthenticationFailed,
    Credentials,
    RefNotFound,
    RepositoryNotFound,
    RepositoryUnreachable,
    Revision,
    cache_path,
    fetch,
    remote_revision,
)
from tests.gitservers import (
    PASSWORD,
    USER,
    Origin,
    Served,
    closed_port,
    http_server,
)

MAIN = GitRef(branch="main")
FILES = {"envs/prod/web.yaml": b"kind: Instance\n", "README.md": b"# infra\n"}


def snapshot(directory: Path) -> dict[str, int]:
    """Every file under ``directory`` with its modification time: what a fetch wrote."""
    return {
        str(path.relative_to(directory)): path.stat().st_mtime_ns
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_first_fetch_on_each_transport(served: Served, cache_dir: Path) -> None:
    sha = served.origin.commit(FILES)

    checkout = fetch(served.url, MAIN, served.credentials, cache_dir)

    assert str(checkout.revision) == f"main@sha1:{sha}"
    assert list(checkout.manifests()) == [("envs/prod/web.yaml", b"kind: Instance\n")]
    assert remote_revision(served.url, MAIN, served.credentials) == checkout.revision
    assert checkout.repository == cache_path(cache_dir, served.url)


def test_an_unchanged_ref_costs_one_lookup_and_fetches_and_writes_nothing(
    counted: Served, cache_dir: Path
) -> None:
    assert counted.log is not None
    counted.origin.commit(FILES)
    first = fetch(counted.url, MAIN, None, cache_dir)
    assert len(counted.log.fetches) == 1
    written = snapshot(cache_dir)
    counted.log.clear()

    again = fetch(counted.url, MAIN, None, cache_dir)

    assert again.revision == first.revision
    assert len(counted.log.requests) == 1, counted.log.requests
    assert counted.log.fetches == []
    assert snapshot(cache_dir) == written

    counted.log.clear()
    assert remote_revision(counted.url, MAIN) == first.revision
    assert len(counted.log.requests) == 1 and counted.log.fetches == []


def test_an_unchanged_local_ref_writes_nothing(origin: Origin, cache_dir: Path) -> None:
    origin.commit(FILES)
    url = f"file://{origin.path}"
    fetch(url, MAIN, None, cache_dir)
    written = snapshot(cache_dir)

    fetch(url, MAIN, None, cache_dir)

    assert snapshot(cache_dir) == written


def test_a_new_commit_is_fetched_alone(served: Served, cache_dir: Path) -> None:
    served.origin.commit(FILES)
    fetch(served.url, MAIN, served.credentials, cache_dir)
    if served.log:
        served.log.clear()
    sha = served.origin.commit({**FILES, "envs/prod/db.yaml": b"kind: Volume\n"})

    checkout = fetch(served.url, MAIN, served.credentials, cache_dir)

    assert checkout.revision == Revision("main", sha)
    assert [name for name, _ in checkout.manifests("envs/prod")] == [
        "envs/prod/db.yaml",
        "envs/prod/web.yaml",
    ]
    if served.log:
        assert served.log.fetches == [[sha]]


def test_a_force_pushed_branch_is_followed(served: Served, cache_dir: Path) -> None:
    served.origin.commit(FILES)
    served.origin.commit({**FILES, "envs/prod/db.yaml": b"kind: Volume\n"})
    fetch(served.url, MAIN, served.credentials, cache_dir)

    rewritten = served.origin.force_push({"envs/prod/other.yaml": b"kind: Firewall\n"})
    checkout = fetch(served.url, MAIN, served.credentials, cache_dir)

    assert checkout.revision == Revision("main", rewritten)
    assert list(checkout.manifests()) == [("envs/prod/other.yaml", b"kind: Firewall\n")]


@pytest.mark.parametrize("annotated", [True, False], ids=["annotated", "lightweight"])
def test_a_tag_resolves_to_the_commit_it_names(
    served: Served, cache_dir: Path, annotated: bool
) -> None:
    tagged = served.origin.commit({"a.yaml": b"v: 1\n"})
    served.origin.tag("v1.2.0", tagged, annotated=annotated)
    served.origin.commit({"a.yaml": b"v: 2\n"})
    ref = GitRef(tag="v1.2.0")

    checkout = fetch(served.url, ref, served.credentials, cache_dir)

    assert str(checkout.revision) == f"v1.2.0@sha1:{tagged}"
    assert list(checkout.manifests()) == [("a.yaml", b"v: 1\n")]
    assert remote_revision(served.url, ref, served.credentials) == checkout.revision


def test_a_commit_ref_checks_out_that_commit(served: Served, cache_dir: Path) -> None:
    old = served.origin.commit({"a.yaml": b"v: 1\n"})
    served.origin.commit({"a.yaml": b"v: 2\n"})
    ref = GitRef(commit=old)

    checkout = fetch(served.url, ref, served.credentials, cache_dir)

    assert str(checkout.revision) == f"sha1:{old}"
    assert list(checkout.manifests()) == [("a.yaml", b"v: 1\n")]
    assert remote_revision(served.url, ref, served.credentials) == checkout.revision
    if served.log:  # cached now: a commit never changes, whatever the branches do
        served.origin.commit({"a.yaml": b"v: 3\n"})
        served.log.clear()
        assert fetch(served.url, ref, served.credentials, cache_dir) == checkout
        assert len(served.log.requests) == 1 and served.log.fetches == []


@pytest.mark.parametrize(
    "ref, named",
    [
        (GitRef(branch="nope"), "branch nope"),
        (GitRef(tag="v9.9.9"), "tag v9.9.9"),
        (GitRef(commit="0" * 39 + "1"), "commit " + "0" * 39 + "1"),
    ],
)
def test_a_missing_ref_is_terminal_and_named(
    served: Served, cache_dir: Path, ref: GitRef, named: str
) -> None:
    served.origin.commit(FILES)

    with pytest.raises(RefNotFound) as fetched:
        fetch(served.url, ref, served.credentials, cache_dir)

    assert isinstance(fetched.value, TerminalError) and fetched.value.reason == "RefNotFound"
    assert named in str(fetched.value) and served.url in str(fetched.value)
    if ref.commit is None:
        with pytest.raises(RefNotFound, match=named):
            remote_revision(served.url, ref, served.credentials)


def test_an_empty_repository_has_no_branch(served: Served, cache_dir: Path) -> None:
    with pytest.raises(RefNotFound, match="branch main"):
        fetch(served.url, MAIN, served.credentials, cache_dir)


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_an_unreachable_repository_is_transient(scheme: str, cache_dir: Path) -> None:
    url = f"{scheme}://127.0.0.1:{closed_port()}/infra.git"

    for call in (lambda: fetch(url, MAIN, None, cache_dir), lambda: remote_revision(url, MAIN)):
        with pytest.raises(RepositoryUnreachable) as failed:
            call()
        assert isinstance(failed.value, TransientError)
        assert url in str(failed.value) and "branch main" in str(failed.value)


@pytest.mark.parametrize("where", ["file", "http"])
def test_no_repository_at_the_url_is_terminal(
    where: str, origin: Origin, tmp_path: Path, cache_dir: Path
) -> None:
    if where == "file":
        url = f"file://{tmp_path / 'nothing-here'}"
        failure = pytest.raises(RepositoryNotFound)
        with failure:
            fetch(url, MAIN, None, cache_dir)
        return
    with http_server(origin) as served:
        url = served.url.replace("infra.git", "other.git")
        with pytest.raises(RepositoryNotFound) as failed:
            fetch(url, MAIN, None, cache_dir)
    assert isinstance(failed.value, TerminalError) and url in str(failed.value)


def test_a_wrong_http_password_is_terminal_and_never_shown(origin: Origin, cache_dir: Path) -> None:
    origin.commit(FILES)
    wrong = Credentials(username=USER, password="wrong-" + PASSWORD)
    with http_server(origin, basic_auth=True) as served:
        for credentials in (wrong, None):
            with pytest.raises(AuthenticationFailed) as refused:
                fetch(served.url, MAIN, credentials, cache_dir)
            assert isinstance(refused.value, TerminalError)
            assert served.url in str(refused.value) and "branch main" in str(refused.value)
            assert PASSWORD not in str(refused.value) and PASSWORD not in repr(refused.value)
        with pytest.raises(AuthenticationFailed):
            remote_revision(served.url, MAIN, wrong)
        assert fetch(served.url, MAIN, served.credentials, cache_dir).revision.sha
    assert PASSWORD not in repr(wrong)


def test_a_password_in_the_url_is_not_shown(origin: Origin, cache_dir: Path) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/infra.git"
    with pytest.raises(RepositoryUnreachable) as failed:
        fetch(url, MAIN, None, cache_dir)
    assert PASSWORD not in str(failed.value) and "***" in str(failed.value)


def test_one_cache_repository_per_url(origin: Origin, cache_dir: Path, tmp_path: Path) -> None:
    origin.commit(FILES)
    other = Origin(tmp_path / "other.git")
    other.commit({"x.json": b"{}"})
    urls = [f"file://{origin.path}", f"file://{other.path}"]

    checkouts = [fetch(url, MAIN, None, cache_dir) for url in urls]

    assert [c.repository for c in checkouts] == [cache_path(cache_dir, url) for url in urls]
    assert len({c.repository for c in checkouts}) == 2
    assert sorted(p.name for p in cache_dir.iterdir() if p.is_dir()) == sorted(
        c.repository.name for c in checkouts
    )
    assert all(os.path.isfile(c.repository / "HEAD") for c in checkouts)  # bare repositories


def test_concurrent_fetches_of_one_url_take_turns(counted: Served, cache_dir: Path) -> None:
    sha = counted.origin.commit(FILES)
    with ThreadPoolExecutor(max_workers=4) as pool:
        checkouts = list(pool.map(lambda _: fetch(counted.url, MAIN, None, cache_dir), range(4)))

    assert {str(c.revision) for c in checkouts} == {f"main@sha1:{sha}"}
    assert counted.log is not None and counted.log.fetches == [[sha]]  # one pack, then cached


def test_a_cache_left_half_made_is_made_again(origin: Origin, cache_dir: Path) -> None:
    origin.commit(FILES)
    url = f"file://{origin.path}"
    broken = cache_path(cache_dir, url)
    broken.mkdir(parents=True)
    (broken / "objects").mkdir()  # a process died while creating it

    checkout = fetch(url, MAIN, None, cache_dir)

    assert list(checkout.manifests()) == [("envs/prod/web.yaml", b"kind: Instance\n")]


def test_revision_strings_round_trip() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    for text in (f"main@sha1:{sha}", f"v1.2.0@sha1:{sha}", f"sha1:{sha}", f"a@b@sha1:{sha}"):
        assert str(Revision.parse(text)) == text
    assert Revision.parse(f"sha1:{sha}").name is None
    with pytest.raises(ValueError, match="not a revision"):
        Revision.parse("main@" + sha)
