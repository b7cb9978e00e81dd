"""The errors of fetching a GitSource's repository, typed by what the reconciler should do.

Where it sits: raised by the fetch layer (``reconcilers.gitsource.fetch``), read by the
GitSource reconciler, which turns them into conditions and retry decisions through the runtime's
tree (``controller.errors``)::

    GitFetchError                       every error below; ``url`` and ``ref`` say what failed
    ├── RepositoryUnreachable           TransientError: network, server down, protocol hang-up
    ├── RepositoryNotFound              TerminalError: nothing is served at that URL
    ├── AuthenticationFailed            TerminalError: credentials refused or unusable
    ├── RefNotFound                     TerminalError: no such branch, tag or commit
    ├── PathNotFound                    TerminalError: spec.path is no directory at the revision
    └── ManifestLimitExceeded           TerminalError: a file too large, too many files

Terminal means retrying at once cannot help; the reconciler still looks again at the next
interval (a branch may be pushed, a password fixed). Messages name the URL and the ref and never
a password: the fetch layer scrubs every secret it was given out of the text it wraps.
"""

from __future__ import annotations

from controller.errors import ReconcileError, TerminalError, TransientError

__all__ = [
    "AuthenticationFailed",
    "GitFetchError",
    "ManifestLimitExceeded",
    "PathNotFound",
    "RefNotFound",
    "RepositoryNotFound",
    "RepositoryUnreachable",
]


class GitFetchError(ReconcileError):
    """Fetching ``url`` at ``ref`` (e.g. ``branch main``) failed; subclasses say how."""

    url: str
    ref: str

    def _locate(self, url: str, ref: str) -> str:
        """Record ``url`` and ``ref``; the message prefix naming them."""
        self.url, self.ref = url, ref
        return f"{url} ({ref})"


class RepositoryUnreachable(GitFetchError, TransientError):
    """The repository could not be reached (refused, timed out, hung up); retried later."""

    def __init__(self, url: str, ref: str, detail: str) -> None:
        TransientError.__init__(self, f"{self._locate(url, ref)}: unreachable: {detail}")


class _Terminal(GitFetchError, TerminalError):
    REASON = "GitFetchFailed"

    def __init__(self, url: str, ref: str, detail: str) -> None:
        TerminalError.__init__(self, f"{self._locate(url, ref)}: {detail}", reason=self.REASON)


class RepositoryNotFound(_Terminal):
    """No git repository is served at the URL."""

    REASON = "RepositoryNotFound"


class AuthenticationFailed(_Terminal):
    """The server refused the credentials, or they are unusable (an ssh URL without
    known_hosts)."""

    REASON = "AuthenticationFailed"


class RefNotFound(_Terminal):
    """The branch or tag does not exist, or the commit is on no branch or tag."""

    REASON = "RefNotFound"


class PathNotFound(_Terminal):
    """``spec.path`` is not a directory of the fetched revision."""

    REASON = "PathNotFound"


class ManifestLimitExceeded(_Terminal):
    """A manifest file is larger than allowed, or there are more files than allowed."""

    REASON = "ManifestLimitExceeded"
