"""``get -w``: follow a kind's changes across dropped connections and compaction.

Where it sits: between ``skyctl get`` (``skyctl.commands``) and a backend's ``list`` and
``watch``. It remembers what it has shown (by namespace/name, with the resourceVersion seen) and
the last resourceVersion the stream reached (an event's or a BOOKMARK's), and:

- resumes a watch that ended or failed in transit from that resourceVersion: the server sends
  every change after it exactly once, so nothing is missed and nothing is shown twice;
- waits between attempts with capped exponential backoff (:class:`Retry`), and gives up with the
  last error once ``give_up_after`` seconds passed without an attempt that delivered anything;
- on 410 Gone (the resourceVersion was compacted, refused before the stream or as an ERROR event
  during it) re-lists and shows only the differences from what it has shown — ADDED, MODIFIED,
  DELETED — then watches from the list's resourceVersion;
- applies the :class:`Selection` (names, label and field selectors) itself, with Kubernetes'
  filtered-watch meaning: an object that stops matching is shown DELETED, one that starts
  matching ADDED. A server that filters (``labelSelector``, ``fieldSelector``) makes this a
  no-op; the ``--etcd`` backend's watch sends every change of the kind.

Errors other than 410 and transient ones (:attr:`ApiError.retryable`) end the watch at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from api_types.registry import KindInfo
from controller.fields import FieldSelector, parse_field_selector
from controller.labels import LabelSelector
from skyctl.backend import ApiError, Backend, WatchEvent

__all__ = ["Follower", "Retry", "Selection"]

Wire = dict[str, Any]


@dataclass(frozen=True)
class Selection:
    """Which objects ``get`` shows: the selectors as typed (for the server) and their matchers."""

    label_text: str | None
    field_text: str | None
    names: frozenset[str]
    labels: LabelSelector
    fields: FieldSelector

    @classmethod
    def parse(cls, labels: str | None, fields: str | None, names: Iterable[str] = ()) -> Selection:
        """Raises ``SelectorError`` or ``ValueError`` naming the term that does not parse."""
        return cls(
            labels or None,
            fields or None,
            frozenset(names),
            LabelSelector.parse(labels),
            parse_field_selector(fields),
        )

    def matches(self, obj: Wire) -> bool:
        metadata = obj.get("metadata") or {}
        if self.names and metadata.get("name") not in self.names:
            return False
        return self.labels.matches(metadata.get("labels") or {}) and self.fields.matches(obj)


@dataclass(frozen=True)
class Retry:
    """Backoff between watch attempts: ``initial`` doubling up to ``maximum`` seconds; give up
    after ``give_up_after`` seconds in which no attempt delivered anything."""

    initial: float = 0.2
    maximum: float = 5.0
    give_up_after: float = 120.0


def _key(obj: Wire) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _version(obj: Wire) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Follower:
    """Iterate the changes after ``resource_version`` to the objects ``shown`` so far."""

    def __init__(
        self,
        backend: Backend,
        info: KindInfo,
        namespace: str | None,
        selection: Selection,
        shown: Iterable[Wire],
        resource_version: str,
        *,
        retry: Retry | None = None,
        warn: Callable[[str], object] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend, self._info, self._namespace = backend, info, namespace
        self._selection = selection
        self._shown = {_key(obj): obj for obj in shown if selection.matches(obj)}
        self.resource_version = resource_version
        self._retry = retry or Retry()
        self._warn, self._sleep, self._clock = warn, sleep, clock

    def __iter__(self) -> Iterator[WatchEvent]:
        delay, failing_since = self._retry.initial, self._clock()
        stale = False
        while True:
            progressed = False
            try:
                if stale:
                    yield from self._relist()
                    stale, progressed = False, True
                for event in self._backend.watch(
                    self._info,
                    self._namespace,
                    self._selection.label_text,
                    self.resource_version,
                    fields=self._selection.field_text,
                ):
                    progressed = True
                    shown = self._admit(event)
                    if shown is not None:
                        yield shown
                problem = ApiError(503, "ServiceUnavailable", "the watch stream ended")
            except ApiError as exc:
                if exc.code != 410 and not exc.retryable:
                    raise
                problem, stale = exc, stale or exc.code == 410  # a failed re-list: again
            now = self._clock()
            if progressed:
                delay, failing_since = self._retry.initial, now
            elif now - failing_since >= self._retry.give_up_after:
                problem.message = f"watch gave up after {now - failing_since:.0f}s: {problem}"
                raise problem
            if stale:
                self._warn(f"resourceVersion {self.resource_version} is gone; re-listing")
            else:
                self._warn(
                    f"watch interrupted ({problem}); resuming from resourceVersion "
                    f"{self.resource_version} in {delay:g}s"
                )
            self._sleep(min(delay, failing_since + self._retry.give_up_after - now))
            delay = min(delay * 2, self._retry.maximum)

    def _admit(self, event: WatchEvent) -> WatchEvent | None:
        """Record the event's revision; the event as the user should see it, or None."""
        obj = event.object
        if _version(obj):
            self.resource_version = _version(obj)
        if event.type == "BOOKMARK":
            return None
        key = _key(obj)
        before = self._shown.pop(key, None)
        if event.type != "DELETED" and self._selection.matches(obj):
            self._shown[key] = obj
            return WatchEvent("ADDED" if before is None else "MODIFIED", obj)
        if before is None:
            return None
        return WatchEvent("DELETED", obj if event.type == "DELETED" else before)

    def _relist(self) -> Iterator[WatchEvent]:
        """Show the differences between a fresh list and what was shown."""
        listed = self._backend.list(
            self._info,
            self._namespace,
            self._selection.label_text,
            fields=self._selection.field_text,
        )
        fresh = {_key(obj): obj for obj in listed.items if self._selection.matches(obj)}
        previous, self._shown = self._shown, fresh
        self.resource_version = listed.resource_version
        for key, obj in previous.items():
            if key not in fresh:
                yield WatchEvent("DELETED", obj)
        for key, obj in fresh.items():
            before = previous.get(key)
            if before is None:
                yield WatchEvent("ADDED", obj)
            elif _version(before) != _version(obj):
                yield WatchEvent("MODIFIED", obj)
