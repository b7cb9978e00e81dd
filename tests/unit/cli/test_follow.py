"""skyctl.follow: resuming, re-listing, filtering and backoff, over a scripted backend.

The backend here is a script of watch attempts (events, then how the attempt ends); the real
API server and etcd are exercised by tests/integration/cli/test_watch_resume.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from api_types import registry
from skyctl.backend import ApiError, ListResult, WatchEvent
from skyctl.follow import Follower, Retry, Selection

INSTANCE = registry.by_kind("Instance")
Wire = dict[str, Any]


def obj(name: str, version: int, phase: str = "Pending", **labels: str) -> Wire:
    return {
        "kind": "Instance",
        "metadata": {
            "name": name,
            "namespace": "acme",
            "resourceVersion": str(version),
            "labels": labels,
        },
        "status": {"phase": phase},
    }


def bookmark(version: int) -> WatchEvent:
    return WatchEvent(
        "BOOKMARK", {"kind": "Instance", "metadata": {"resourceVersion": str(version)}}
    )


Attempt = tuple[list[WatchEvent], ApiError | None]
DROPPED = ApiError(503, "ServiceUnavailable", "connection reset")
GONE = ApiError(410, "Gone", "too old")


@dataclass
class ScriptedBackend:
    """``attempts``: per watch call, the events to send and the error to end with (or None)."""

    attempts: list[Attempt]
    listing: ListResult = field(default_factory=lambda: ListResult([], "0"))
    watched_from: list[str] = field(default_factory=list)
    lists: int = 0
    failing_lists: int = 0

    def watch(
        self,
        info: Any,
        namespace: str | None,
        selector: str | None,
        resource_version: str,
        *,
        fields: str | None = None,
    ) -> Iterator[WatchEvent]:
        self.watched_from.append(resource_version)
        if not self.attempts:
            raise ApiError(403, "Forbidden", "end of the script")
        events, ending = self.attempts.pop(0)
        yield from events
        if ending is not None:
            raise ending

    def list(
        self, info: Any, namespace: str | None, selector: str | None, *, fields: str | None = None
    ) -> ListResult:
        self.lists += 1
        if self.lists <= self.failing_lists:
            raise DROPPED
        return self.listing


@dataclass
class FakeTime:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def follow(
    backend: ScriptedBackend,
    shown: list[Wire],
    version: str,
    selection: Selection | None = None,
    retry: Retry | None = None,
    time: FakeTime | None = None,
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Run until the script ends (403); (type, name, resourceVersion) seen and warnings."""
    time = time or FakeTime()
    warnings: list[str] = []
    follower = Follower(
        backend,  # type: ignore[arg-type]
        INSTANCE,
        "acme",
        selection or Selection.parse(None, None),
        shown,
        version,
        retry=retry,
        warn=warnings.append,
        sleep=time.sleep,
        clock=time.clock,
    )
    seen = []
    with pytest.raises(ApiError) as ended:
        for event in follower:
            metadata = event.object["metadata"]
            seen.append((event.type, metadata["name"], metadata["resourceVersion"]))
    assert ended.value.code == 403, ended.value
    return seen, warnings


def test_a_dropped_stream_resumes_from_the_last_event_or_bookmark() -> None:
    backend = ScriptedBackend(
        [
            ([WatchEvent("MODIFIED", obj("a", 11))], DROPPED),
            ([bookmark(15)], DROPPED),
            ([WatchEvent("ADDED", obj("b", 16))], None),  # a clean end also resumes
            ([WatchEvent("DELETED", obj("a", 17))], DROPPED),
        ]
    )
    seen, warnings = follow(backend, [obj("a", 10)], "10")
    assert backend.watched_from == ["10", "11", "15", "16", "17"]
    assert seen == [("MODIFIED", "a", "11"), ("ADDED", "b", "16"), ("DELETED", "a", "17")]
    assert "resuming from resourceVersion 11" in warnings[0]
    assert backend.lists == 0


def test_gone_relists_and_shows_only_the_differences() -> None:
    backend = ScriptedBackend(
        [([], GONE), ([WatchEvent("MODIFIED", obj("kept", 31))], DROPPED)],
        listing=ListResult([obj("kept", 5), obj("changed", 25), obj("new", 26)], "30"),
    )
    shown = [obj("kept", 5), obj("changed", 6), obj("gone", 7)]
    seen, warnings = follow(backend, shown, "7")
    assert seen == [
        ("DELETED", "gone", "7"),
        ("MODIFIED", "changed", "25"),
        ("ADDED", "new", "26"),
        ("MODIFIED", "kept", "31"),
    ]
    assert backend.watched_from == ["7", "30", "31"]
    assert warnings[0] == "resourceVersion 7 is gone; re-listing"


def test_a_relist_that_fails_is_retried_before_watching_again() -> None:
    backend = ScriptedBackend(
        [([], GONE), ([WatchEvent("ADDED", obj("new", 41))], None)],
        listing=ListResult([obj("old", 5)], "40"),
        failing_lists=2,
    )
    seen, warnings = follow(backend, [obj("old", 5)], "5")
    assert backend.lists == 3
    assert backend.watched_from == ["5", "40", "41"]
    assert seen == [("ADDED", "new", "41")]
    assert warnings[:3] == ["resourceVersion 5 is gone; re-listing"] * 3


def test_the_selection_turns_leaving_into_deleted_and_entering_into_added() -> None:
    selection = Selection.parse("app=web", "status.phase!=Running")
    backend = ScriptedBackend(
        [
            (
                [
                    WatchEvent("MODIFIED", obj("a", 11, "Running", app="web")),  # leaves
                    WatchEvent("MODIFIED", obj("a", 12, "Running", app="web")),  # still out
                    WatchEvent("ADDED", obj("other", 13, app="db")),  # never in
                    WatchEvent("MODIFIED", obj("other", 14, app="web")),  # enters
                    WatchEvent("DELETED", obj("x", 15, app="web")),  # never shown
                ],
                None,
            )
        ]
    )
    seen, _ = follow(backend, [obj("a", 10, app="web"), obj("skip", 9, app="db")], "10", selection)
    # the DELETED row shows the object as it was last shown
    assert seen == [("DELETED", "a", "10"), ("ADDED", "other", "14")]
    assert backend.watched_from[-1] == "15"


def test_names_restrict_the_selection() -> None:
    selection = Selection.parse(None, None, ["a"])
    backend = ScriptedBackend(
        [([WatchEvent("MODIFIED", obj("b", 11)), WatchEvent("MODIFIED", obj("a", 12))], None)]
    )
    seen, _ = follow(backend, [obj("a", 10)], "10", selection)
    assert seen == [("MODIFIED", "a", "12")]


def test_backoff_doubles_to_its_cap_resets_on_progress_and_gives_up() -> None:
    retry = Retry(initial=0.5, maximum=2.0, give_up_after=10.0)
    time = FakeTime()
    dropped: Attempt = ([], DROPPED)
    backend = ScriptedBackend([dropped] * 3 + [([bookmark(12)], DROPPED)] + [dropped] * 20)
    follower = Follower(
        backend,  # type: ignore[arg-type]
        INSTANCE,
        "acme",
        Selection.parse(None, None),
        [],
        "10",
        retry=retry,
        sleep=time.sleep,
        clock=time.clock,
    )
    with pytest.raises(ApiError) as gave_up:
        list(follower)
    assert gave_up.value.code == 503
    assert "watch gave up after 10s: connection reset" in str(gave_up.value)
    assert time.slept[:4] == [0.5, 1.0, 2.0, 0.5]  # reset after the attempt with a bookmark
    assert time.slept[4:] == [1.0, 2.0, 2.0, 2.0, 2.0, 0.5]  # capped; the last try at 10 s
    assert backend.watched_from[-1] == "12"


def test_other_errors_end_the_watch_at_once() -> None:
    backend = ScriptedBackend([([], ApiError(401, "Unauthorized", "token expired"))])
    with pytest.raises(ApiError) as ended:
        list(Follower(backend, INSTANCE, "acme", Selection.parse(None, None), [], "1"))  # type: ignore[arg-type]
    assert ended.value.code == 401 and backend.watched_from == ["1"]
